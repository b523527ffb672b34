package upstream

import (
	"strings"
	"testing"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/finderbot/finderbot/sdk"
)

func FuzzDecodePage(f *testing.F) {
	f.Add(seedData(f))
	f.Add(textPage(3))
	f.Add([]byte(`{"list":[],"keyBuff":""}`))
	f.Add([]byte(`{"list":[{"content":{"msg":{"NewMsgId":18446744073709551615,"MsgType":10002,"Content":{"string":"<sysmsg type=\"a\"><a><b>1</b></a></sysmsg>"}}}}],"keyBuff":"x"}`))
	f.Add([]byte(`{"list":[{"content":{"msg":{"NewMsgId":1}}},{},"x",{"content":{"msg":{"NewMsgId":-3}}},{"content":{"msg":{"NewMsgId":2,"MsgType":"1"}}}],"keyBuff":""}`))
	f.Add([]byte(`{"list":[{"content":{"msg":{"NewMsgId":0}}},{"content":{"msg":{"NewMsgId":"\u597d"}}}],"keyBuff":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePage(data)
		if err != nil {
			return
		}
		if len(p.Messages) > MaxPageItems {
			t.Fatalf("%d messages past the bound", len(p.Messages))
		}
		// Every item of the list, as the same JSON decoder splits it, is
		// either a message or skipped.
		var rp rawPage
		if err := json.Unmarshal(data, &rp); err != nil {
			t.Fatalf("page decoded, but its list does not split into items: %v", err)
		}
		if got, want := len(p.Messages)+len(p.Skipped), len(rp.List); got != want {
			t.Fatalf("%d messages + %d skipped for %d items", len(p.Messages), len(p.Skipped), want)
		}
		last := -1
		for _, s := range p.Skipped {
			if s.Index <= last || s.Index >= len(rp.List) {
				t.Fatalf("skipped index %d after %d, of %d items", s.Index, last, len(rp.List))
			}
			last = s.Index
			item := string(rp.List[s.Index])
			if s.Reason == "" || len(s.Raw) > maxSkippedRaw || !strings.HasPrefix(item, s.Raw) ||
				(len(item) <= maxSkippedRaw && s.Raw != item) || (utf8.ValidString(item) && !utf8.ValidString(s.Raw)) {
				t.Fatalf("skipped item %d: %+v for item %q", s.Index, s, item)
			}
		}
		for _, m := range p.Messages {
			if m.ID == 0 {
				t.Fatalf("message with ID 0: %+v", m)
			}
			if m.Type == sdk.TypeText && m.Text != m.Content {
				t.Fatalf("text message with Text %q != Content %q", m.Text, m.Content)
			}
			if m.Type != sdk.TypeText && m.Text != "" {
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
		if m.Type == sdk.TypeSystem {
			f.Add(m.Content)
		}
	}
	f.Add(`<sysmsg type="x"><x><a><b>&lt;&#x4e2d;&amp;</b></a><c/><![CDATA[z]]></x></sysmsg>`)
	f.Add(`<!DOCTYPE x [<!ENTITY a "aaaa">]><sysmsg type="x">&a;</sysmsg>`)
	f.Fuzz(func(t *testing.T, s string) {
		sys, err := sdk.ParseSysMsg(s)
		if err != nil {
			return
		}
		if len(sys.Fields) > sdk.MaxXMLFields {
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
		if m.Type == sdk.TypeImage {
			f.Add(m.Content)
		}
	}
	f.Add(`<img aeskey='a&quot;b' length="12"/>`)
	f.Add(`<msg><img length="x"/></msg>`)
	f.Fuzz(func(t *testing.T, s string) {
		img, err := sdk.ParseImage(s)
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
