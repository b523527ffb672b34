package dst

import (
	"context"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

func TestPrivateSendEcho(t *testing.T) {
	t.Parallel()
	u, clock := newTestUpstream(1, Faults{})
	const stranger = "fv1_0123456789abcdef@findermsgstranger"
	id := u.Inject(testWID, Incoming{From: stranger, Text: "你好"})
	msgs, kb := drain(t, u, testWID, "")
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("first pages hold %v, want [%d]", ids(msgs), id)
	}
	m := msgs[0]
	clock.Advance(42 * time.Second)
	sent, err := u.PrivateSend(t.Context(), testToken, upstream.ReplyTo(testWID, &m, "在的"))
	if err != nil {
		t.Fatalf("PrivateSend: %v", err)
	}
	if sent.NewMsgID <= 1<<53 || sent.NewMsgID == id || sent.CreateTime != clock.Now().Unix() {
		t.Fatalf("answer %+v: want a fresh id above 2^53 and CreateTime %d", sent, clock.Now().Unix())
	}
	echoes, _ := drain(t, u, testWID, kb)
	if len(echoes) != 1 {
		t.Fatalf("after the send the pages hold %d messages, want the echo alone", len(echoes))
	}
	e := echoes[0]
	if !e.FromSelf || e.ID != sent.NewMsgID || e.From != testFinder || e.To != stranger ||
		e.Session != m.Session || e.Text != "在的" || e.Type != sdk.TypeText || !e.Time.Equal(clock.Now().Truncate(time.Second)) {
		t.Fatalf("echo %+v does not mirror the send", e)
	}
	want := Delivery{Endpoint: "/privateSend", WID: testWID, To: stranger, My: testFinder, Session: m.Session,
		Content: "在的", NewMsgID: sent.NewMsgID, Time: clock.Now()}
	if got := u.Accepted(); len(got) != 1 || got[0] != want {
		t.Fatalf("Accepted = %+v, want [%+v]", got, want)
	}
}

func TestSendTextHasNoEcho(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(2, Faults{})
	sent, err := u.SendText(t.Context(), testToken, upstream.SendTextRequest{WID: testWID, WcID: "wxid_friend", Content: "hi"})
	if err != nil {
		t.Fatalf("SendText: %v", err)
	}
	if msgs, _ := drain(t, u, testWID, ""); len(msgs) != 0 {
		t.Fatalf("/sendText echoed into the Finder log: %v", ids(msgs))
	}
	got := u.Accepted()
	if len(got) != 1 || got[0].Endpoint != "/sendText" || got[0].To != "wxid_friend" || got[0].NewMsgID != sent.NewMsgID || got[0].My != "" {
		t.Fatalf("Accepted = %+v", got)
	}
}

func TestGetSessionIDIsStable(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(3, Faults{})
	id := u.Inject(testWID, Incoming{From: "wxid_someone", Text: "hi"})
	msgs, _ := drain(t, u, testWID, "")
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("pages hold %v", ids(msgs))
	}
	get := func(to, my string) string {
		t.Helper()
		s, err := u.GetSessionID(t.Context(), testToken, upstream.SessionIDRequest{WID: testWID, ToUserName: to, MyUserName: my})
		if err != nil {
			t.Fatalf("GetSessionID: %v", err)
		}
		return s
	}
	s := get("wxid_someone", testFinder)
	if s != msgs[0].Session || get("wxid_someone", testFinder) != s {
		t.Fatalf("session %q is not the message's %q, or not stable", s, msgs[0].Session)
	}
	if get("wxid_other", testFinder) == s || get("wxid_someone", "v2_other@finder") == s {
		t.Fatal("two conversations share a session id")
	}
	if got := get("fv1_abc@findermsgstranger", testFinder); got != "abc@findermsg" {
		t.Fatalf("stranger session = %q, want abc@findermsg", got)
	}
}

func TestSendRefusals(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(4, Faults{})
	ctx := t.Context()
	refused := func(name string, err error, offline bool) {
		t.Helper()
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Code != "1001" || errors.Is(err, upstream.ErrOffline) != offline {
			t.Errorf("%s: err = %v, want a 1001 refusal (offline %v)", name, err, offline)
		}
	}
	_, err := u.PrivateSend(ctx, testToken, upstream.PrivateSendRequest{WID: testWID, ToUserName: "a", MyUserName: testFinder, Content: "x"})
	refused("no session", err, false)
	_, err = u.SendText(ctx, testToken, upstream.SendTextRequest{WID: testWID, Content: "x"})
	refused("no wcId", err, false)
	_, err = u.GetSessionID(ctx, testToken, upstream.SessionIDRequest{WID: testWID, MyUserName: testFinder})
	refused("no toUserName", err, false)
	_, err = u.PrivateSend(ctx, testToken, upstream.PrivateSendRequest{WID: "nobody", ToUserName: "a", MyUserName: "b", SessionID: "s", Content: "x"})
	refused("unknown wId", err, true)
	_, err = u.SyncFinder(ctx, testToken, "nobody", "")
	refused("sync of an unknown wId", err, true)
	if n := len(u.Accepted()); n != 0 {
		t.Fatalf("%d refused sends were accepted", n)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(5, Faults{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := u.PrivateSend(ctx, testToken, upstream.PrivateSendRequest{WID: testWID, ToUserName: "a", MyUserName: "b", SessionID: "s", Content: "x"})
	var te *upstream.TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a transport error wrapping context.Canceled", err)
	}
	if _, err := u.SyncFinder(ctx, testToken, testWID, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("SyncFinder err = %v, want context.Canceled", err)
	}
	if len(u.Accepted()) != 0 {
		t.Fatal("a send with a canceled context was accepted")
	}
}

// TestSendShapes hits each endpoint with each send shape at probability 1
// and checks what the caller sees, whether the upstream accepted the send,
// whether its echo is in the log, and whether time passed.
func TestSendShapes(t *testing.T) {
	t.Parallel()
	const timeout = 7 * time.Second
	type want struct {
		accepted  bool
		late      bool // the clock moved past the call timeout
		retryable bool
		err       func(error) bool
	}
	transport := func(target error) func(error) bool {
		return func(err error) bool {
			var te *upstream.TransportError
			return errors.As(err, &te) && errors.Is(err, target)
		}
	}
	refusal := func(offline bool) func(error) bool {
		return func(err error) bool {
			var ue *upstream.Error
			return errors.As(err, &ue) && ue.Code == "1001" && ue.Offline == offline
		}
	}
	status502 := func(err error) bool {
		var se *upstream.StatusError
		return errors.As(err, &se) && se.StatusCode == http.StatusBadGateway
	}
	malformed := func(err error) bool {
		var me *upstream.MalformedError
		return errors.As(err, &me) && me.Reason != ""
	}
	tests := map[Shape]struct {
		f Faults
		w want
	}{
		ShapeRefuse:            {Faults{Refuse: 1}, want{err: refusal(false)}},
		ShapeOffline:           {Faults{Offline: 1}, want{err: refusal(true)}},
		ShapeUnwritten:         {Faults{Unwritten: 1}, want{retryable: true, err: transport(syscall.ECONNREFUSED)}},
		ShapeCut:               {Faults{Cut: 1}, want{accepted: true, retryable: true, err: transport(io.ErrUnexpectedEOF)}},
		ShapeMalformed:         {Faults{Malformed: 1}, want{accepted: true, retryable: true, err: malformed}},
		ShapeLate:              {Faults{Late: 1}, want{accepted: true, late: true, retryable: true, err: transport(context.DeadlineExceeded)}},
		ShapeDropped:           {Faults{Dropped: 1}, want{late: true, retryable: true, err: transport(context.DeadlineExceeded)}},
		ShapeStatus502Accepted: {Faults{Status502Accepted: 1}, want{accepted: true, retryable: true, err: status502}},
		ShapeStatus502Lost:     {Faults{Status502Lost: 1}, want{retryable: true, err: status502}},
	}
	for shape, tt := range tests {
		tt.f.CallTimeout = timeout
		check := func(t *testing.T, u *Upstream, clock *Clock, before time.Time, err error, endpoint string, echo bool) {
			t.Helper()
			if err == nil || !tt.w.err(err) {
				t.Fatalf("err = %v (%T), not the %s shape", err, err, shape)
			}
			if got := upstream.Retryable(err); got != tt.w.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.w.retryable)
			}
			if moved := clock.Now().Sub(before); (moved > timeout) != tt.w.late || (!tt.w.late && moved != 0) {
				t.Errorf("the clock moved %v (timeout %v)", moved, timeout)
			}
			calls := u.Calls()
			last := calls[len(calls)-1]
			if last.Endpoint != endpoint || len(last.Shapes) != 1 || last.Shapes[0] != shape || last.Err != err.Error() {
				t.Errorf("last call %+v does not record the %s shape and the error", last, shape)
			}
			acc := u.Accepted()
			if endpoint == endpointSessionID {
				if len(acc) != 0 || last.Accepted {
					t.Fatalf("/getSessionId accepted %+v", acc)
				}
				return
			}
			if got := len(acc) == 1; got != tt.w.accepted || last.Accepted != tt.w.accepted {
				t.Fatalf("Accepted = %+v (call says %v), want accepted %v", acc, last.Accepted, tt.w.accepted)
			}
			if tt.w.accepted && (acc[0].Shape != shape || acc[0].Endpoint != endpoint || !acc[0].Time.Equal(before)) {
				t.Errorf("delivery %+v: want shape %s at %v", acc[0], shape, before)
			}
			u.SetFaults(Faults{})
			msgs, _ := drain(t, u, testWID, "")
			var echoes []sdk.Message
			for _, m := range msgs {
				if m.FromSelf {
					echoes = append(echoes, m)
				}
			}
			if got := len(echoes) == 1; got != echo {
				t.Fatalf("echoes in the log: %+v, want one: %v", echoes, echo)
			}
			if echo && (echoes[0].ID != acc[0].NewMsgID || echoes[0].Text != acc[0].Content) {
				t.Fatalf("echo %+v does not match delivery %+v", echoes[0], acc[0])
			}
		}
		t.Run(string(shape), func(t *testing.T) {
			t.Parallel()
			t.Run("privateSend", func(t *testing.T) {
				t.Parallel()
				u, clock := newTestUpstream(10, tt.f)
				u.Inject(testWID, Incoming{Text: "hi"})
				before := clock.Now()
				_, err := u.PrivateSend(t.Context(), testToken, upstream.PrivateSendRequest{WID: testWID,
					ToUserName: defaultStranger(testWID), MyUserName: testFinder, SessionID: "s@findermsg", Content: "reply"})
				check(t, u, clock, before, err, endpointPrivateSend, tt.w.accepted)
			})
			t.Run("sendText", func(t *testing.T) {
				t.Parallel()
				u, clock := newTestUpstream(11, tt.f)
				before := clock.Now()
				_, err := u.SendText(t.Context(), testToken, upstream.SendTextRequest{WID: testWID, WcID: "wxid_friend", Content: "hi"})
				check(t, u, clock, before, err, endpointSendText, false)
			})
			t.Run("getSessionId", func(t *testing.T) {
				t.Parallel()
				u, clock := newTestUpstream(12, tt.f)
				before := clock.Now()
				_, err := u.GetSessionID(t.Context(), testToken, upstream.SessionIDRequest{WID: testWID, ToUserName: "wxid_a", MyUserName: testFinder})
				check(t, u, clock, before, err, endpointSessionID, false)
			})
		})
	}
}

// TestSendShapesMix checks that shapes at lower probabilities share the
// calls between them and that a clean answer stays possible.
func TestSendShapesMix(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(13, Faults{Refuse: .1, Offline: .1, Unwritten: .1, Cut: .1, Malformed: .1,
		Late: .1, Dropped: .1, Status502Accepted: .1, Status502Lost: .1})
	seen := map[Shape]int{}
	for range 2000 {
		_, _ = u.SendText(t.Context(), testToken, upstream.SendTextRequest{WID: testWID, WcID: "wxid_friend", Content: "hi"})
	}
	for _, c := range u.Calls() {
		if len(c.Shapes) == 0 {
			seen[""]++
			continue
		}
		seen[c.Shapes[0]]++
	}
	for _, s := range []Shape{"", ShapeRefuse, ShapeOffline, ShapeUnwritten, ShapeCut, ShapeMalformed, ShapeLate,
		ShapeDropped, ShapeStatus502Accepted, ShapeStatus502Lost} {
		if seen[s] < 100 || seen[s] > 320 {
			t.Errorf("shape %q hit %d of 2000 calls, want about 200", s, seen[s])
		}
	}
}
