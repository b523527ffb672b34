package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// session logs the default member and a new WeChat account in over HTTP
// and returns the token, wId and wcId.
func session(t testing.TB, url string) (tok, wID, wcID string) {
	t.Helper()
	var m struct {
		Data struct{ Authorization string } `json:"data"`
	}
	post(t, url+"/member/login", "", `{"account":"demo","password":"demo"}`, &m)
	var q struct {
		Data struct{ WID string } `json:"data"`
	}
	post(t, url+"/iPadLogin", m.Data.Authorization, `{"wcId":"","proxy":1}`, &q)
	var li struct {
		Code string                `json:"code"`
		Data struct{ WcID string } `json:"data"`
	}
	post(t, url+"/getIPadLoginInfo", m.Data.Authorization, `{"wId":"`+q.Data.WID+`","autoCheck":false}`, &li)
	if li.Code != "1000" || li.Data.WcID == "" {
		t.Fatalf("login failed: %+v", li)
	}
	return m.Data.Authorization, q.Data.WID, li.Data.WcID
}

func post(t testing.TB, url, token, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

type page struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Data    struct {
		List []struct {
			Content struct {
				Msg struct {
					NewMsgID json.Number             `json:"NewMsgId"`
					Content  struct{ String string } `json:"Content"`
				} `json:"msg"`
				IsSender int   `json:"isSender"`
				Seq      int64 `json:"seq"`
			} `json:"content"`
		} `json:"list"`
		KeyBuff string `json:"keyBuff"`
	} `json:"data"`
}

func sync1(t testing.TB, url, tok, wID, kb string) page {
	t.Helper()
	var p page
	post(t, url+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":"`+kb+`"}`, &p)
	if p.Code != "1000" {
		t.Fatalf("syncFinder refused: %s", p.Message)
	}
	return p
}

func TestCursorPerInstance(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{AutoConfirm: true, PageSize: 10})
	defer s.Close()
	tokA, wA, wcA := session(t, s.URL)
	_, wB, wcB := session(t, s.URL)
	if wcA == wcB {
		t.Fatal("two first logins got the same account")
	}
	// Pages of 10: the 19 seed messages take two pages.
	p1 := sync1(t, s.URL, tokA, wA, "")
	p2 := sync1(t, s.URL, tokA, wA, p1.Data.KeyBuff)
	if len(p1.Data.List) != 10 || len(p2.Data.List) != 9 || p2.Data.KeyBuff != SeedKeyBuff {
		t.Fatalf("pages of %d and %d, keyBuff %q", len(p1.Data.List), len(p2.Data.List), p2.Data.KeyBuff)
	}
	if p2.Data.List[0].Content.Seq <= p1.Data.List[9].Content.Seq {
		t.Fatal("second page repeats the first")
	}
	if info, _ := s.Instance(wA); info.KeyBuff != SeedKeyBuff {
		t.Errorf("instance keyBuff = %q", info.KeyBuff)
	}
	// An injection reaches only its account.
	if _, err := s.Inject(wcA, Text("", "只给A")); err != nil {
		t.Fatal(err)
	}
	pa := sync1(t, s.URL, tokA, wA, SeedKeyBuff)
	pb := sync1(t, s.URL, tokA, wB, SeedKeyBuff)
	if len(pa.Data.List) != 1 || len(pb.Data.List) != 0 || pa.Data.List[0].Content.Msg.Content.String != "只给A" {
		t.Fatalf("A got %d, B got %d", len(pa.Data.List), len(pb.Data.List))
	}
	// An old cursor gets everything after it again: the cursor is the
	// caller's, the simulator only follows it.
	again := sync1(t, s.URL, tokA, wA, p1.Data.KeyBuff)
	if len(again.Data.List) != 10 {
		t.Fatalf("replay from the first cursor: %d messages", len(again.Data.List))
	}
}

func TestDuplicateFault(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{AutoConfirm: true})
	defer s.Close()
	tok, wID, wcID := session(t, s.URL)
	if _, err := s.AddFault(Fault{Kind: FaultDuplicate, Duplicates: 2, Count: 1}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Inject(wcID, Text("", "new"))
	p := sync1(t, s.URL, tok, wID, SeedKeyBuff)
	if len(p.Data.List) != 3 || p.Data.List[2].Content.Msg.NewMsgID.String() != strconv.FormatUint(in[0].ID, 10) {
		t.Fatalf("page with duplicates has %d items", len(p.Data.List))
	}
	if p.Data.List[0].Content.Seq != 1241 || p.Data.List[1].Content.Seq != 1242 {
		t.Errorf("duplicates are not the last delivered: %d, %d", p.Data.List[0].Content.Seq, p.Data.List[1].Content.Seq)
	}
	// Count 1: the fault has retired.
	if p := sync1(t, s.URL, tok, wID, SeedKeyBuff); len(p.Data.List) != 1 {
		t.Fatalf("after the fault: %d items", len(p.Data.List))
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault  Fault
		status int
		body   string
	}{
		"refuse":          {fault: Fault{Kind: FaultRefuse, Endpoint: "/isOnline"}, status: 200, body: `{"code":"1001","message":"失败","data":null}`},
		"status":          {fault: Fault{Kind: FaultStatus, Status: 503}, status: 503, body: "<html>"},
		"malformed":       {fault: Fault{Kind: FaultMalformed}, status: 200, body: `{"code":"1000","message":"处理成功","data":{"list":[{"content":{"msg":`},
		"other endpoint":  {fault: Fault{Kind: FaultRefuse, Endpoint: "/syncFinder"}, status: 200, body: `{"code":"1000","message":"处理成功","data":null}`},
		"rate never hits": {fault: Fault{Kind: FaultRefuse, Rate: 1e-12}, status: 200, body: `{"code":"1000"`},
	}
	s := NewServer(Options{AutoConfirm: true})
	defer s.Close()
	tok, wID, _ := session(t, s.URL)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Not parallel: faults are server-wide.
			id, err := s.AddFault(tc.fault)
			if err != nil {
				t.Fatal(err)
			}
			defer s.RemoveFault(id)
			st, data, _ := raw(t, "POST", s.URL+"/isOnline", tok, `{"wId":"`+wID+`"}`)
			if st != tc.status || !strings.HasPrefix(string(data), tc.body) {
				t.Fatalf("status %d, body %.80s; want %d, %s", st, data, tc.status, tc.body)
			}
		})
	}
	for _, bad := range []Fault{
		{Kind: "nope"}, {Kind: FaultLatency}, {Kind: FaultStatus, Status: 42}, {Kind: FaultRefuse, Rate: 2},
		{Kind: FaultLate}, {Kind: FaultRepeatID, Duplicates: -1}, {Kind: FaultBadID, Endpoint: "/isOnline"},
	} {
		if _, err := s.AddFault(bad); err == nil {
			t.Errorf("AddFault(%+v) accepted", bad)
		}
	}
}

// sendBody is a /privateSend request body of instance wID.
func sendBody(wID, content string) string {
	return `{"wId":"` + wID + `","toUserName":"fv1_abc@findermsgstranger","myUserName":"v2_me@finder","sessionId":"abc@findermsg","content":"` + content + `"}`
}

// postRaw posts body and returns the reply's status and bytes, or the error
// that cut the exchange short (raw fails the test on one).
func postRaw(url, token, body string) (int, []byte, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// echoOf returns the NewMsgId of the account's own message with the given
// text in the page after SeedKeyBuff, "" if there is none.
func echoOf(t *testing.T, url, tok, wID, text string) string {
	t.Helper()
	for _, it := range sync1(t, url, tok, wID, SeedKeyBuff).Data.List {
		if it.Content.IsSender == 1 && it.Content.Msg.Content.String == text {
			return it.Content.Msg.NewMsgID.String()
		}
	}
	return ""
}

// TestSendFaultsPerform checks, for every fault that spoils an answer,
// whether the /privateSend behind it was performed: recorded as sent and
// echoed into the account's messages.
func TestSendFaultsPerform(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		kind      FaultKind
		performed bool
		status    int
		body      string // the reply's start; "" when the exchange is cut
	}{
		"refuse":             {kind: FaultRefuse, status: 200, body: `{"code":"1001"`},
		"status":             {kind: FaultStatus, status: 502, body: "<html>"},
		"malformed":          {kind: FaultMalformed, status: 200, body: malformedBody},
		"accepted_malformed": {kind: FaultAcceptedMalformed, performed: true, status: 200, body: malformedBody},
		"truncated":          {kind: FaultTruncated, performed: true, status: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(Options{AutoConfirm: true})
			defer s.Close()
			tok, wID, _ := session(t, s.URL)
			if _, err := s.AddFault(Fault{Kind: tc.kind, Endpoint: "/privateSend", Count: 1}); err != nil {
				t.Fatal(err)
			}
			st, data, err := postRaw(s.URL+"/privateSend", tok, sendBody(wID, name))
			switch {
			case tc.body == "" && err == nil:
				t.Fatalf("reply %d %s arrived whole, want it cut", st, data)
			case tc.body != "" && err != nil:
				t.Fatal(err)
			case st != tc.status || !strings.HasPrefix(string(data), tc.body):
				t.Fatalf("reply %d %.80s, want %d %s", st, data, tc.status, tc.body)
			}
			if sent := s.Sent(); (len(sent) == 1) != tc.performed || len(sent) > 1 {
				t.Errorf("%d sent, performed = %v", len(sent), tc.performed)
			}
			if echo := echoOf(t, s.URL, tok, wID, name); (echo != "") != tc.performed {
				t.Errorf("echo %q, performed = %v", echo, tc.performed)
			}
		})
	}
}

// TestLateFault checks that a late answer's call is performed at once: its
// echo is in /syncFinder while the answer is still held, and the answer,
// with the echo's id, comes when the clock has moved by the latency.
func TestLateFault(t *testing.T) {
	t.Parallel()
	clock := NewFakeClock(time.Unix(1700000000, 0))
	s := NewServer(Options{AutoConfirm: true, Clock: clock})
	defer s.Close()
	tok, wID, _ := session(t, s.URL)
	if _, err := s.AddFault(Fault{Kind: FaultLate, Endpoint: "/privateSend", Latency: time.Minute, Count: 1}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   []byte
		err    error
	}
	before := clock.Waiters()
	done := make(chan answer, 1)
	go func() {
		st, body, err := postRaw(s.URL+"/privateSend", tok, sendBody(wID, "late"))
		done <- answer{st, body, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The fault waits on the clock only after the call was performed.
	if err := clock.BlockUntil(ctx, before+1); err != nil {
		t.Fatal(err)
	}
	echo := echoOf(t, s.URL, tok, wID, "late")
	if echo == "" || len(s.Sent()) != 1 {
		t.Fatalf("echo %q and %d sent while the answer is held, want both", echo, len(s.Sent()))
	}
	select {
	case a := <-done:
		t.Fatalf("answered before the clock moved: %d %s %v", a.status, a.body, a.err)
	default:
	}
	clock.Advance(time.Minute)
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		t.Fatal("no answer after the latency")
	}
	var r struct {
		Code string
		Data struct {
			NewMsgID json.Number `json:"newMsgId"`
		}
	}
	if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &r) != nil || r.Code != "1000" || r.Data.NewMsgID.String() != echo {
		t.Fatalf("answer %d %s %v, want 1000 with newMsgId %s", a.status, a.body, a.err, echo)
	}
	// Count 1: the next send is answered at once.
	if st, body, err := postRaw(s.URL+"/privateSend", tok, sendBody(wID, "on time")); err != nil || st != 200 || !bytes.HasPrefix(body, []byte(`{"code":"1000"`)) {
		t.Fatalf("after the fault: %d %s %v", st, body, err)
	}
}

// rawPage is a /syncFinder reply with its items kept as they were sent.
type rawPage struct {
	Code string `json:"code"`
	Data struct {
		List    []json.RawMessage `json:"list"`
		KeyBuff string            `json:"keyBuff"`
	} `json:"data"`
}

// newMsgID returns an item's NewMsgId as sent, nil when it has none.
func newMsgID(t *testing.T, item json.RawMessage) json.RawMessage {
	t.Helper()
	var it struct {
		Content struct {
			Msg map[string]json.RawMessage `json:"msg"`
		} `json:"content"`
	}
	if err := json.Unmarshal(item, &it); err != nil {
		t.Fatalf("item %s: %v", item, err)
	}
	return it.Content.Msg["NewMsgId"]
}

// Items of TestPageFaults' layouts that are not real messages.
const (
	junkNoID  = -1 // an item without NewMsgId
	junkBadID = -2 // an item whose NewMsgId is "not-a-number"
)

// TestPageFaults compares the raw /syncFinder page served with a fault to
// the one served without: the same real items byte for byte, in the
// layout the fault makes, and the same keyBuff.
func TestPageFaults(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		faults []Fault
		inject int
		// layout lists the faulted page's items: an index into the page
		// without the fault, or junkNoID or junkBadID.
		layout []int
	}{
		"repeat_id":           {faults: []Fault{{Kind: FaultRepeatID}}, inject: 3, layout: []int{0, 0, 1, 2}},
		"repeat_id, 3 copies": {faults: []Fault{{Kind: FaultRepeatID, Duplicates: 3}}, inject: 2, layout: []int{0, 0, 0, 0, 1}},
		"repeat_id, no news":  {faults: []Fault{{Kind: FaultRepeatID}}, layout: []int{}},
		"bad_id":              {faults: []Fault{{Kind: FaultBadID}}, inject: 3, layout: []int{junkNoID, 0, 1, 2, junkBadID}},
		"bad_id, no news":     {faults: []Fault{{Kind: FaultBadID}}, layout: []int{junkNoID, junkBadID}},
		"bad_id and repeat_id": {
			faults: []Fault{{Kind: FaultBadID}, {Kind: FaultRepeatID}}, inject: 2,
			layout: []int{junkNoID, 0, 0, 1, junkBadID},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(Options{AutoConfirm: true})
			defer s.Close()
			tok, wID, wcID := session(t, s.URL)
			for i := range tc.inject {
				if _, err := s.Inject(wcID, Text("", fmt.Sprintf("news %d", i))); err != nil {
					t.Fatal(err)
				}
			}
			fetch := func() ([]byte, rawPage) {
				t.Helper()
				st, data, _ := raw(t, "POST", s.URL+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":"`+SeedKeyBuff+`"}`)
				var p rawPage
				if err := json.Unmarshal(data, &p); err != nil || st != 200 || p.Code != "1000" {
					t.Fatalf("reply %d %s: %v", st, data, err)
				}
				return data, p
			}
			_, plain := fetch()
			for _, f := range tc.faults {
				f.Count = 1
				if _, err := s.AddFault(f); err != nil {
					t.Fatal(err)
				}
			}
			data, got := fetch()
			if got.Data.KeyBuff != plain.Data.KeyBuff {
				t.Errorf("keyBuff %q, want %q as without the fault", got.Data.KeyBuff, plain.Data.KeyBuff)
			}
			if len(got.Data.List) != len(tc.layout) {
				t.Fatalf("%d items, want %d: %s", len(got.Data.List), len(tc.layout), data)
			}
			copies := make([]int, len(plain.Data.List))
			for i, want := range tc.layout {
				item := got.Data.List[i]
				switch id := newMsgID(t, item); want {
				case junkNoID:
					if id != nil {
						t.Errorf("item %d has NewMsgId %s, want none", i, id)
					}
				case junkBadID:
					if string(id) != `"not-a-number"` {
						t.Errorf("item %d has NewMsgId %s, want \"not-a-number\"", i, id)
					}
				default:
					copies[want]++
					if !bytes.Equal(item, plain.Data.List[want]) {
						t.Errorf("item %d is\n%s\nwant\n%s", i, item, plain.Data.List[want])
					}
				}
			}
			// On the wire: each real id appears as often as the layout says.
			for i, item := range plain.Data.List {
				id := newMsgID(t, item)
				if n := bytes.Count(data, []byte(`"NewMsgId":`+string(id)+`,`)); n != copies[i] {
					t.Errorf("NewMsgId %s appears %d times, want %d", id, n, copies[i])
				}
			}
		})
	}
}

func TestLatencyFaultUsesClock(t *testing.T) {
	t.Parallel()
	clock := NewFakeClock(time.Unix(1700000000, 0))
	s := NewServer(Options{AutoConfirm: true, Clock: clock})
	defer s.Close()
	tok, wID, _ := session(t, s.URL)
	if _, err := s.AddFault(Fault{Kind: FaultLatency, Latency: time.Minute, Endpoint: "/isOnline"}); err != nil {
		t.Fatal(err)
	}
	// Waits abandoned by the login's long poll may still be registered:
	// wait for one more than there are now.
	before := clock.Waiters()
	done := make(chan int, 1)
	go func() { done <- post(t, s.URL+"/isOnline", tok, `{"wId":"`+wID+`"}`, nil) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntil(ctx, before+1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if st := <-done; st != 200 {
		t.Fatalf("status %d", st)
	}
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{})
	defer s.Close()
	u := s.URL
	var m struct {
		Data struct{ Authorization string } `json:"data"`
	}
	post(t, u+"/member/login", "", `{"account":"demo","password":"demo"}`, &m)
	tok := m.Data.Authorization
	var q struct {
		Data struct{ WID string } `json:"data"`
	}
	post(t, u+"/iPadLogin", tok, `{"wcId":"wxid_ctl","proxy":1}`, &q)
	wID := q.Data.WID
	if got := s.PendingScans(); len(got) != 1 || got[0] != wID {
		t.Fatalf("pending = %v", got)
	}
	var ok struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	post(t, u+"/_sim/script", "", `{"wId":"`+wID+`","steps":["slider"]}`, &ok)
	post(t, u+"/_sim/confirm", "", `{}`, &ok) // the only pending scan
	if !ok.OK {
		t.Fatalf("confirm: %s", ok.Error)
	}
	var li struct {
		Data struct {
			URL  string `json:"url"`
			WcID string `json:"wcId"`
		} `json:"data"`
	}
	post(t, u+"/getIPadLoginInfo", tok, `{"wId":"`+wID+`","autoCheck":false}`, &li)
	if li.Data.URL == "" {
		t.Fatalf("scripted slider missing: %+v", li)
	}
	post(t, u+"/getIPadLoginInfo", tok, `{"wId":"`+wID+`","autoCheck":false}`, &li)
	if li.Data.WcID != "wxid_ctl" {
		t.Fatalf("login = %+v", li)
	}

	var inj struct {
		OK       bool      `json:"ok"`
		Messages []Message `json:"messages"`
	}
	post(t, u+"/_sim/inject", "", `{"wId":"`+wID+`","text":"哈喽","messages":[{"type":"image"},{"type":"system"},{"type":"text","fromSelf":true,"content":"own"},{"type":49,"content":"<appmsg/>","id":"18446744073709551615"}]}`, &inj)
	if !inj.OK || len(inj.Messages) != 5 || inj.Messages[4].ID != 18446744073709551615 || inj.Messages[4].Type != 49 {
		t.Fatalf("inject = %+v", inj)
	}
	p := sync1(t, u, tok, wID, SeedKeyBuff)
	if len(p.Data.List) != 5 || p.Data.List[3].Content.IsSender != 1 || p.Data.List[4].Content.Msg.NewMsgID != "18446744073709551615" {
		t.Fatalf("page after inject = %+v", p.Data.List)
	}
	post(t, u+"/_sim/inject", "", `{"wcId":"wxid_ctl","messages":[{"type":"video"}]}`, &ok)
	if ok.OK || !strings.Contains(ok.Error, "messages[0]") {
		t.Errorf("bad type: %+v", ok)
	}

	post(t, u+"/sendText", tok, `{"wId":"`+wID+`","wcId":"wxid_f","content":"hi"}`, nil)
	var sent struct {
		Sent []Sent `json:"sent"`
	}
	req, _ := http.NewRequest("GET", u+"/_sim/sent", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&sent)
	resp.Body.Close()
	if len(sent.Sent) != 1 || sent.Sent[0].WcID != "wxid_f" || sent.Sent[0].WID != wID || sent.Sent[0].NewMsgID == 0 {
		t.Fatalf("sent = %+v", sent)
	}

	var fault struct {
		OK bool `json:"ok"`
		ID int  `json:"id"`
	}
	post(t, u+"/_sim/faults", "", `{"kind":"latency","latency":"1ms","endpoint":"/sendText","count":1}`, &fault)
	if !fault.OK || len(s.Faults()) != 1 {
		t.Fatalf("fault = %+v", fault)
	}
	post(t, u+"/_sim/faults", "", `{"kind":"latency","latency":"soon"}`, &ok)
	if ok.OK {
		t.Error("a bad latency was accepted")
	}
	req, _ = http.NewRequest("DELETE", u+"/_sim/faults/"+strconv.Itoa(fault.ID), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete fault: %v %v", resp, err)
	}
	if len(s.Faults()) != 0 {
		t.Fatal("fault not removed")
	}

	post(t, u+"/_sim/kick", "", `{"wId":"`+wID+`"}`, &ok)
	var on struct{ Code string }
	post(t, u+"/isOnline", tok, `{"wId":"`+wID+`"}`, &on)
	if on.Code != "1001" {
		t.Errorf("kicked instance isOnline code %s", on.Code)
	}
	post(t, u+"/_sim/expire", "", `{"token":"`+tok+`"}`, &ok)
	var r struct{ Code, Message string }
	post(t, u+"/isOnline", tok, `{"wId":"`+wID+`"}`, &r)
	if r.Code != "1001" || !strings.Contains(r.Message, "Authorization") {
		t.Errorf("expired token: %+v", r)
	}
	post(t, u+"/_sim/expire", "", `{"token":"nope"}`, &ok)
	if ok.OK {
		t.Error("expiring an unknown token succeeded")
	}

	for _, path := range []string{"/_sim/", "/_sim/state", "/_sim/qr/" + wID, "/_sim/appkey/token?token=x"} {
		st, data, _ := raw(t, "GET", u+path, "", "")
		if st != 200 || len(data) == 0 {
			t.Errorf("GET %s: %d", path, st)
		}
	}
}

// TestControlFaultKinds adds each fault kind over the control API and checks
// what the simulator made of it, defaults included.
func TestControlFaultKinds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body string
		want *Fault // nil: refused
	}{
		"accepted_malformed":   {body: `{"kind":"accepted_malformed","endpoint":"/privateSend"}`, want: &Fault{Kind: FaultAcceptedMalformed, Endpoint: "/privateSend"}},
		"late":                 {body: `{"kind":"late","endpoint":"/sendText","latency":"45s","count":1}`, want: &Fault{Kind: FaultLate, Endpoint: "/sendText", Latency: 45 * time.Second, Count: 1}},
		"late without latency": {body: `{"kind":"late"}`},
		"repeat_id":            {body: `{"kind":"repeat_id","rate":0.5}`, want: &Fault{Kind: FaultRepeatID, Endpoint: "/syncFinder", Rate: 0.5, Duplicates: 1}},
		"repeat_id, 2 copies":  {body: `{"kind":"repeat_id","duplicates":2}`, want: &Fault{Kind: FaultRepeatID, Endpoint: "/syncFinder", Duplicates: 2}},
		"bad_id":               {body: `{"kind":"bad_id"}`, want: &Fault{Kind: FaultBadID, Endpoint: "/syncFinder"}},
		"bad_id off the page":  {body: `{"kind":"bad_id","endpoint":"/privateSend"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(Options{})
			defer s.Close()
			var r struct {
				OK    bool   `json:"ok"`
				ID    int    `json:"id"`
				Error string `json:"error"`
			}
			post(t, s.URL+"/_sim/faults", "", tc.body, &r)
			if tc.want == nil {
				if r.OK || len(s.Faults()) != 0 {
					t.Fatalf("accepted: %+v", r)
				}
				return
			}
			if got := s.Faults()[r.ID]; !r.OK || got != *tc.want {
				t.Fatalf("reply %+v, fault %+v; want %+v", r, got, *tc.want)
			}
		})
	}
	if !strings.Contains(controlHelp, `"accepted_malformed"|"truncated"|"late"|"duplicate"|"repeat_id"|"bad_id"`) {
		t.Error("the control API's help does not list the fault kinds")
	}
}

// TestCloseReleasesLongPolls checks that closing a server with a parked
// long poll leaks no goroutine.
func TestCloseReleasesLongPolls(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	clock := NewFakeClock(time.Unix(1700000000, 0))
	s := NewServer(Options{Clock: clock})
	var m struct {
		Data struct{ Authorization string } `json:"data"`
	}
	post(t, s.URL+"/member/login", "", `{"account":"demo","password":"demo"}`, &m)
	var q struct {
		Data struct{ WID string } `json:"data"`
	}
	post(t, s.URL+"/iPadLogin", m.Data.Authorization, `{"wcId":"","proxy":1}`, &q)
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.URL+"/getIPadLoginInfo", strings.NewReader(`{"wId":"`+q.Data.WID+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", m.Data.Authorization)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-done
	http.DefaultClient.CloseIdleConnections()
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{AutoConfirm: true})
	defer s.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tok, wID, wcID := session(t, s.URL)
			kb := ""
			for i := range 20 {
				if i%5 == 0 {
					_, _ = s.Inject(wcID, Text("", "ping"))
				}
				p := sync1(t, s.URL, tok, wID, kb)
				kb = p.Data.KeyBuff
				_ = s.Instances()
			}
		})
	}
	wg.Wait()
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	c := NewFakeClock(time.Unix(0, 0))
	a, b := c.After(time.Second), c.After(time.Hour)
	if c.Waiters() != 2 {
		t.Fatalf("waiters = %d", c.Waiters())
	}
	c.Advance(time.Second)
	select {
	case got := <-a:
		if !got.Equal(time.Unix(1, 0)) {
			t.Errorf("fired at %v", got)
		}
	default:
		t.Fatal("1s timer did not fire")
	}
	select {
	case <-b:
		t.Fatal("1h timer fired early")
	default:
	}
	if c.Waiters() != 1 {
		t.Errorf("waiters = %d", c.Waiters())
	}
	select {
	case <-c.After(0):
	default:
		t.Error("After(0) did not fire at once")
	}
}

// BenchmarkSyncFinderCaughtUp measures the simulator's cost of the request
// the daemon's fleet makes most: a /syncFinder with nothing new, served
// in-process (no network).
func BenchmarkSyncFinderCaughtUp(b *testing.B) {
	u := New(Options{AutoConfirm: true})
	srv := httptest.NewServer(u)
	tok, wID, _ := session(b, srv.URL)
	srv.Close()
	body := `{"wId":"` + wID + `","keyBuff":"` + SeedKeyBuff + `"}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/syncFinder", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", tok)
			w := httptest.NewRecorder()
			u.ServeHTTP(w, req)
			if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"code":"1000"`) {
				b.Fatalf("reply %d %s", w.Code, w.Body)
			}
		}
	})
}
