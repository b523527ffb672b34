package sdk

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
)

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
