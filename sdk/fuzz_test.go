package sdk

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"google.golang.org/protobuf/proto"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
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

// FuzzHandleResponse decodes arbitrary bytes as a plugin's answer the way
// the daemon receives it and converts it to sdk types: within the bounds it
// converts losslessly (converting back gives the same answer), past them
// it is refused; nothing panics.
func FuzzHandleResponse(f *testing.F) {
	for _, r := range []*HandleResponse{
		{Replies: []Reply{{Text: "你好"}}, Sends: []Send{{Account: "shop", To: "wxid_x", Session: "s", Text: "t"}},
			Diagnostics: []Diagnostic{{Severity: SeverityWarning, Summary: "s", Detail: "d"}}},
		{},
		{Replies: make([]Reply, MaxResponseMessages)},
	} {
		b, err := proto.Marshal(handleResponseToProto(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pr pluginpb.HandleResponse
		if proto.Unmarshal(data, &pr) != nil {
			return
		}
		r, err := handleResponseFromProto(&pr)
		if err != nil {
			if len(pr.GetReplies())+len(pr.GetSends()) <= MaxResponseMessages && len(pr.GetDiagnostics()) <= MaxDiagnostics && !longText(&pr) {
				t.Fatalf("answer within the bounds refused: %v", err)
			}
			return
		}
		if len(r.Replies)+len(r.Sends) > MaxResponseMessages || len(r.Diagnostics) > MaxDiagnostics {
			t.Fatalf("answer past the bounds taken: %d replies, %d sends, %d diagnostics", len(r.Replies), len(r.Sends), len(r.Diagnostics))
		}
		again, err := handleResponseFromProto(handleResponseToProto(r))
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, again, err)
		}
	})
}

// FuzzHandleRequest decodes arbitrary bytes as a request the way a plugin
// receives it: whatever it holds converts to sdk types and back without
// loss, the action's ID included, and nothing panics.
func FuzzHandleRequest(f *testing.F) {
	for _, r := range []*HandleRequest{
		{ID: "acc/9008843899058959155/r0", Action: "echo", Params: map[string]string{"prefix": "» "},
			Message: &Message{ID: 1<<63 + 1, Type: TypeText, Text: "你好", Sys: &SysMsg{Type: "t", Fields: map[string]string{"a": "b"}},
				Image: &Image{AESKey: "k", Attrs: map[string]string{"x": "y"}}}, Account: "shop"},
		{ID: "tick-1", Tick: &Tick{Schedule: "hourly", Time: time.Unix(0, 1700000000123456789)}},
		{},
	} {
		b, err := proto.Marshal(handleRequestToProto(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pr pluginpb.HandleRequest
		if proto.Unmarshal(data, &pr) != nil {
			return
		}
		r := handleRequestFromProto(&pr)
		if r.ID != pr.GetId() {
			t.Fatalf("ID %q arrived as %q", pr.GetId(), r.ID)
		}
		again := handleRequestFromProto(handleRequestToProto(r))
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip: %+v -> %+v", r, again)
		}
	})
}

func longText(r *pluginpb.HandleResponse) bool {
	for _, rep := range r.GetReplies() {
		if len(rep.GetText()) > MaxResponseText {
			return true
		}
	}
	for _, s := range r.GetSends() {
		if len(s.GetText()) > MaxResponseText || len(s.GetAccount()) > MaxNameBytes || len(s.GetTo()) > MaxNameBytes || len(s.GetSession()) > MaxNameBytes {
			return true
		}
	}
	return false
}

// FuzzDescribeResponse does the same for a plugin's description.
func FuzzDescribeResponse(f *testing.F) {
	b, err := proto.Marshal(describeToProto(&DescribeResponse{Name: "crm", Version: "1.0", Description: "d",
		Actions: []Action{{Name: "record", Description: "r", Params: []Param{{Name: "from", Required: true, Default: "x"}}}}}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var pd pluginpb.DescribeResponse
		if proto.Unmarshal(data, &pd) != nil {
			return
		}
		d, err := describeFromProto(&pd)
		if err != nil {
			if len(pd.GetActions()) <= MaxActions {
				t.Fatalf("description within the bounds refused: %v", err)
			}
			return
		}
		again, err := describeFromProto(describeToProto(d))
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("round trip: %+v -> %+v, %v", d, again, err)
		}
	})
}
