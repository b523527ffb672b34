package sdk

import (
	"strings"
	"testing"
)

func FuzzDecodePage(f *testing.F) {
	f.Add(seedData(f))
	f.Add(textPage(3))
	f.Add([]byte(`{"list":[],"keyBuff":""}`))
	f.Add([]byte(`{"list":[{"content":{"msg":{"NewMsgId":18446744073709551615,"MsgType":10002,"Content":{"string":"<sysmsg type=\"a\"><a><b>1</b></a></sysmsg>"}}}}],"keyBuff":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePage(data)
		if err != nil {
			return
		}
		if len(p.Messages) > MaxPageItems {
			t.Fatalf("%d messages past the bound", len(p.Messages))
		}
		for _, m := range p.Messages {
			if m.Type == TypeText && m.Text != m.Content {
				t.Fatalf("text message with Text %q != Content %q", m.Text, m.Content)
			}
			if m.Type != TypeText && m.Text != "" {
				t.Fatalf("%s message with Text %q", m.Type, m.Text)
			}
		}
	})
}

func FuzzParseSysMsg(f *testing.F) {
	p, err := DecodePage(seedData(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range p.Messages {
		if m.Type == TypeSystem {
			f.Add(m.Content)
		}
	}
	f.Add(`<sysmsg type="x"><x><a><b>&lt;&#x4e2d;&amp;</b></a><c/><![CDATA[z]]></x></sysmsg>`)
	f.Add(`<!DOCTYPE x [<!ENTITY a "aaaa">]><sysmsg type="x">&a;</sysmsg>`)
	f.Fuzz(func(t *testing.T, s string) {
		sys, err := ParseSysMsg(s)
		if err != nil {
			return
		}
		if len(sys.Fields) > MaxXMLFields {
			t.Fatalf("%d fields past the bound", len(sys.Fields))
		}
		for k, v := range sys.Fields {
			// Nothing can grow: no value is longer than the input.
			if len(k) > len(s) || len(v) > len(s) {
				t.Fatalf("field %q=%q longer than the input", k, v)
			}
		}
	})
}

func FuzzParseImage(f *testing.F) {
	p, err := DecodePage(seedData(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range p.Messages {
		if m.Type == TypeImage {
			f.Add(m.Content)
		}
	}
	f.Add(`<img aeskey='a&quot;b' length="12"/>`)
	f.Add(`<msg><img length="x"/></msg>`)
	f.Fuzz(func(t *testing.T, s string) {
		img, err := ParseImage(s)
		if err != nil {
			return
		}
		for k, v := range img.Attrs {
			if len(k) > len(s) || len(v) > len(s) {
				t.Fatalf("attribute %q=%q longer than the input", k, v)
			}
		}
		if strings.Contains(s, "<img") == false {
			t.Fatalf("image found in %q without an <img> element", s)
		}
	})
}
