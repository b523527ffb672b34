package sdk

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSysMsg(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in     string
		typ    string
		fields map[string]string
		err    string
	}{
		"live close": {
			in:     `<sysmsg type="finderliveclosenotifymsg"><finderliveclosenotifymsg><live_id>1</live_id><object_id>2</object_id></finderliveclosenotifymsg></sysmsg>`,
			typ:    "finderliveclosenotifymsg",
			fields: map[string]string{"live_id": "1", "object_id": "2"},
		},
		"nested and escaped": {
			in:     `<?xml version="1.0"?><sysmsg type="revokemsg"><revokemsg><session>s</session><a><b>&lt;x&gt; &#20320;&#x597d;</b></a><empty/><c><![CDATA[<raw>]]></c></revokemsg></sysmsg>`,
			typ:    "revokemsg",
			fields: map[string]string{"session": "s", "a.b": "<x> 你好", "empty": "", "c": "<raw>"},
		},
		"type element absent": {
			in:     `<sysmsg type="pat"><fromusername>a</fromusername></sysmsg>`,
			typ:    "pat",
			fields: map[string]string{"fromusername": "a"},
		},
		"self closing":     {in: `<sysmsg type="x"/>`, typ: "x"},
		"wrong root":       {in: `<msg><a>1</a></msg>`, err: "want <sysmsg>"},
		"mismatched":       {in: `<sysmsg type="x"><a>1</b></sysmsg>`, err: "does not match"},
		"truncated":        {in: `<sysmsg type="x"><a>1</a>`, err: "unexpected end"},
		"doctype refused":  {in: `<!DOCTYPE x [<!ENTITY a "b">]><sysmsg type="x"/>`, err: "DTDs are not supported"},
		"unknown entity":   {in: `<sysmsg type="x"><a>&a;</a></sysmsg>`, err: "unknown entity"},
		"trailing element": {in: `<sysmsg type="x"></sysmsg><b/>`, err: "after the root"},
		"too deep":         {in: `<sysmsg type="x">` + strings.Repeat("<a>", MaxXMLDepth+1), err: "deeper than"},
		"invalid utf8":     {in: "<sysmsg type=\"\xff\"/>", err: "UTF-8"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSysMsg(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Type != tc.typ || len(s.Fields) != len(tc.fields) {
				t.Fatalf("got %+v, want type %q fields %v", s, tc.typ, tc.fields)
			}
			for k, v := range tc.fields {
				if s.Fields[k] != v {
					t.Errorf("field %s = %q, want %q", k, s.Fields[k], v)
				}
			}
		})
	}
}

func TestXMLBounds(t *testing.T) {
	t.Parallel()
	big := `<sysmsg type="x"><x><a>` + strings.Repeat("a", MaxXMLSize) + `</a></x></sysmsg>`
	if _, err := ParseSysMsg(big); !errors.Is(err, ErrXMLTooLarge) {
		t.Errorf("oversized sysmsg: err = %v", err)
	}
	if _, err := ParseImage(`<msg><img a="` + strings.Repeat("b", MaxXMLSize) + `"/></msg>`); !errors.Is(err, ErrXMLTooLarge) {
		t.Errorf("oversized image: err = %v", err)
	}
	var many strings.Builder
	many.WriteString(`<sysmsg type="x"><x>`)
	for i := 0; i <= MaxXMLFields; i++ {
		many.WriteString("<f" + strings.Repeat("z", i%7) + itoa(i) + ">1</f" + strings.Repeat("z", i%7) + itoa(i) + ">")
	}
	many.WriteString(`</x></sysmsg>`)
	if _, err := ParseSysMsg(many.String()); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("too many fields: err = %v", err)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestParseImage(t *testing.T) {
	t.Parallel()
	img, err := ParseImage(`<img aeskey='k&amp;1' length="10" cdnthumbwidth="" md5="m"/>`)
	if err != nil {
		t.Fatal(err)
	}
	if img.AESKey != "k&1" || img.Length != 10 || img.MD5 != "m" || img.Attrs["cdnthumbwidth"] != "" {
		t.Errorf("image = %+v", img)
	}
	for in, want := range map[string]string{
		`<msg><voicemsg/></msg>`:       "no <img>",
		`<msg><img length="x"/></msg>`: "not a number",
		`<msg><img a=b/></msg>`:        "unquoted",
		`hello`:                        "text before the root",
	} {
		if _, err := ParseImage(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseImage(%q) err = %v, want %q", in, err, want)
		}
	}
}
