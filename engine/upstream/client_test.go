package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/sdk"
)

// fixture is a simulator and a client of it.
type fixture struct {
	srv   *sim.Server
	c     *upstream.Client
	clock *sim.FakeClock
}

func newFixture(t *testing.T, opts sim.Options, copts ...upstream.Option) *fixture {
	t.Helper()
	clock := sim.NewFakeClock(time.Date(2024, 3, 27, 19, 8, 7, 0, time.UTC))
	if opts.Clock == nil {
		opts.Clock = clock
	}
	srv := sim.NewServer(opts)
	t.Cleanup(srv.Close)
	c, err := upstream.New(srv.URL, copts...)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, c: c, clock: clock}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// token logs the default member in.
func (f *fixture) token(t *testing.T) string {
	t.Helper()
	m, err := f.c.MemberLogin(ctxT(t), sim.DefaultAccount, sim.DefaultPassword)
	if err != nil {
		t.Fatal(err)
	}
	return m.Token
}

// login logs a new WeChat account in (the simulator must auto-confirm) and
// returns the token and profile.
func (f *fixture) login(t *testing.T) (string, *upstream.LoggedIn) {
	t.Helper()
	ctx := ctxT(t)
	tok := f.token(t)
	ql, err := f.c.IPadLogin(ctx, tok, upstream.IPadLoginRequest{DeviceType: upstream.DeviceIPad, Proxy: 3})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
	if err != nil {
		t.Fatal(err)
	}
	li, ok := out.(*upstream.LoggedIn)
	if !ok {
		t.Fatalf("outcome = %#v, want *LoggedIn", out)
	}
	return tok, li
}

func TestMemberLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{Members: []sim.Member{
		{Account: "a", Password: "pa"}, {Account: "frozen", Password: "pf", Status: 1},
	}})
	ctx := ctxT(t)
	m, err := f.c.MemberLogin(ctx, "a", "pa")
	if err != nil {
		t.Fatal(err)
	}
	if m.Token == "" || m.Status != upstream.MemberNormal || m.Token != f.srv.MemberToken("a") {
		t.Fatalf("member = %+v", m)
	}
	m, err = f.c.MemberLogin(ctx, "frozen", "pf")
	if err != nil || m.Status != upstream.MemberFrozen || m.Status.String() != "frozen" {
		t.Fatalf("frozen member = %+v, %v", m, err)
	}
	_, err = f.c.MemberLogin(ctx, "a", "wrong")
	var e *upstream.Error
	if !errors.As(err, &e) || e.Code != "1001" || e.Endpoint != "/member/login" || errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("bad password: err = %v", err)
	}
	if upstream.Retryable(err) {
		t.Error("a refusal is retryable")
	}
}

func TestLoginOutcomes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	tok := f.token(t)
	ctx := ctxT(t)
	ql, err := f.c.IPadLogin(ctx, tok, upstream.IPadLoginRequest{WcID: "wxid_known", DeviceType: upstream.DeviceMac, Proxy: 3})
	if err != nil {
		t.Fatal(err)
	}
	if ql.WID == "" || !strings.Contains(ql.QRCodeURL, ql.WID) {
		t.Fatalf("iPadLogin = %+v", ql)
	}
	if err := f.srv.ScriptLogin(ql.WID, sim.StepSlider, sim.StepVerifyCode); err != nil {
		t.Fatal(err)
	}

	// The long poll parks until the scan is confirmed.
	type result struct {
		out upstream.LoginOutcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
		done <- result{out, err}
	}()
	if err := f.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("long poll answered before the scan: %#v, %v", r.out, r.err)
	default:
	}
	if err := f.srv.ConfirmScan(ql.WID); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if s, ok := r.out.(*upstream.SliderRequired); r.err != nil || !ok || s.URL == "" {
		t.Fatalf("first outcome = %#v, %v; want *SliderRequired", r.out, r.err)
	}

	out, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
	if v, ok := out.(*upstream.VerifyCodeRequired); err != nil || !ok || !strings.Contains(v.Message, "验证码") {
		t.Fatalf("second outcome = %#v, %v; want *VerifyCodeRequired", out, err)
	}
	out, err = f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID, VerifyCode: "000000"})
	if _, ok := out.(*upstream.VerifyCodeRequired); err != nil || !ok {
		t.Fatalf("wrong code outcome = %#v, %v; want *VerifyCodeRequired", out, err)
	}
	out, err = f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID, VerifyCode: sim.DefaultVerifyCode})
	li, ok := out.(*upstream.LoggedIn)
	if err != nil || !ok {
		t.Fatalf("last outcome = %#v, %v; want *LoggedIn", out, err)
	}
	if li.WcID != "wxid_known" || li.WID != ql.WID || li.NickName == "" || li.Status != "3" || li.DeviceType != upstream.DeviceMac || li.Uin == 0 {
		t.Fatalf("profile = %+v", li)
	}
	online, err := f.c.IsOnline(ctx, tok, ql.WID)
	if err != nil || !online {
		t.Fatalf("IsOnline = %v, %v", online, err)
	}
}

func TestLongPollExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	tok := f.token(t)
	ctx := ctxT(t)
	ql, err := f.c.IPadLogin(ctx, tok, upstream.IPadLoginRequest{Proxy: 1})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
		errc <- err
	}()
	if err := f.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(sim.DefaultLongPoll)
	err = <-errc
	var e *upstream.Error
	if !errors.As(err, &e) || e.Code != "1001" {
		t.Fatalf("expired scan: err = %v, want a refusal", err)
	}
	if _, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID}); !errors.Is(err, upstream.ErrOffline) {
		t.Fatalf("after expiry: err = %v, want ErrOffline", err)
	}
}

func TestLongPollCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	tok := f.token(t)
	ctx := ctxT(t)
	ql, err := f.c.IPadLogin(ctx, tok, upstream.IPadLoginRequest{Proxy: 1})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := f.c.GetIPadLoginInfo(pctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
		errc <- err
	}()
	if err := f.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = <-errc
	var te *upstream.TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled long poll: err = %v", err)
	}
	if upstream.Retryable(err) {
		t.Error("the caller's cancellation is retryable")
	}
}

// TestLongPollOutlivesCallTimeout checks that neither the per-call timeout
// nor an http.Client.Timeout cuts the long poll: it stays parked for well
// over both, then completes.
func TestLongPollOutlivesCallTimeout(t *testing.T) {
	t.Parallel()
	const short = 50 * time.Millisecond
	f := newFixture(t, sim.Options{}, upstream.WithCallTimeout(short),
		upstream.WithHTTPClient(&http.Client{Transport: upstream.NewTransport(), Timeout: short}))
	tok := f.token(t)
	ctx := ctxT(t)
	ql, err := f.c.IPadLogin(ctx, tok, upstream.IPadLoginRequest{Proxy: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.c.GetIPadLoginInfo(ctx, tok, upstream.LoginInfoRequest{WID: ql.WID})
		done <- err
	}()
	if err := f.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("long poll ended early: %v", err)
	case <-time.After(6 * short): // the timeouts under test would have fired by now
	}
	if err := f.srv.ConfirmScan(ql.WID); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("long poll: %v", err)
	}
}

func TestSecondLoginAndOffline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true})
	tok, li := f.login(t)
	ctx := ctxT(t)
	if err := f.srv.Kick(li.WID); err != nil {
		t.Fatal(err)
	}
	online, err := f.c.IsOnline(ctx, tok, li.WID)
	if err != nil || online {
		t.Fatalf("kicked IsOnline = %v, %v; want false, nil", online, err)
	}
	_, err = f.c.SyncFinder(ctx, tok, li.WID, "")
	if !errors.Is(err, upstream.ErrOffline) || upstream.Retryable(err) {
		t.Fatalf("sync while offline: err = %v, want ErrOffline", err)
	}
	wID, err := f.c.SecondLogin(ctx, tok, li.WcID)
	if err != nil || wID == "" || wID == li.WID {
		t.Fatalf("SecondLogin = %q, %v", wID, err)
	}
	if online, err := f.c.IsOnline(ctx, tok, wID); err != nil || !online {
		t.Fatalf("IsOnline after second login = %v, %v", online, err)
	}
	if _, err := f.c.SecondLogin(ctx, tok, "wxid_never_seen"); err == nil {
		t.Fatal("second login of an unknown account succeeded")
	}
	// A second login takes the account's previous instance offline.
	wID2, err := f.c.SecondLogin(ctx, tok, li.WcID)
	if err != nil {
		t.Fatal(err)
	}
	if online, err := f.c.IsOnline(ctx, tok, wID); err != nil || online {
		t.Fatalf("replaced instance IsOnline = %v, %v; want false", online, err)
	}
	if online, err := f.c.IsOnline(ctx, tok, wID2); err != nil || !online {
		t.Fatalf("new instance IsOnline = %v, %v; want true", online, err)
	}
}

func TestSyncFinder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true})
	tok, li := f.login(t)
	ctx := ctxT(t)
	page, err := f.c.SyncFinder(ctx, tok, li.WID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 19 || page.KeyBuff != sim.SeedKeyBuff {
		t.Fatalf("first page: %d messages, keyBuff %q", len(page.Messages), page.KeyBuff)
	}
	var hello *sdk.Message
	for i := range page.Messages {
		if page.Messages[i].ID == 1767797523284146072 {
			hello = &page.Messages[i]
		}
	}
	if hello == nil || hello.Text != "哈喽" || hello.FromSelf {
		t.Fatalf("stranger's 哈喽 = %+v", hello)
	}

	empty, err := f.c.SyncFinder(ctx, tok, li.WID, page.KeyBuff)
	if err != nil || len(empty.Messages) != 0 || empty.KeyBuff != page.KeyBuff {
		t.Fatalf("caught-up page = %+v, %v", empty, err)
	}
	in, err := f.srv.Inject(li.WcID, sim.Text("", "你好"), sim.LiveClosed("1", "2"), sim.Image(""))
	if err != nil {
		t.Fatal(err)
	}
	next, err := f.c.SyncFinder(ctx, tok, li.WID, page.KeyBuff)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Messages) != 3 || next.KeyBuff == page.KeyBuff {
		t.Fatalf("next page: %d messages, keyBuff %q", len(next.Messages), next.KeyBuff)
	}
	m := next.Messages[0]
	if m.ID != in[0].ID || m.ID < 1<<53 || m.Text != "你好" || m.Session != in[0].Session || m.To != in[0].To {
		t.Fatalf("injected text = %+v, want %+v", m, in[0])
	}
	if s := next.Messages[1].Sys; s == nil || s.Type != "finderliveclosenotifymsg" || s.Field("live_id") != "1" {
		t.Fatalf("injected notice = %+v", next.Messages[1])
	}
	if img := next.Messages[2].Image; img == nil || img.Length != 113874 {
		t.Fatalf("injected image = %+v", next.Messages[2])
	}

	// A reply is echoed back as the account's own message.
	sent, err := f.c.PrivateSend(ctx, tok, upstream.ReplyTo(li.WID, &m, "您好,有什么可以帮您?"))
	if err != nil {
		t.Fatal(err)
	}
	echo, err := f.c.SyncFinder(ctx, tok, li.WID, next.KeyBuff)
	if err != nil {
		t.Fatal(err)
	}
	if len(echo.Messages) != 1 || !echo.Messages[0].FromSelf || echo.Messages[0].ID != sent.NewMsgID {
		t.Fatalf("echo page = %+v", echo.Messages)
	}

	if _, err := f.c.SyncFinder(ctx, tok, li.WID, "not a keyBuff"); err == nil {
		t.Fatal("a garbage keyBuff was accepted")
	}
}

func TestSendAndSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true})
	tok, li := f.login(t)
	ctx := ctxT(t)
	stranger := "fv1_cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsgstranger"
	me := "v2_060000231003b20faec8c6e18f10c7d6c903ec3db0776955d3d97c6b329d6aa58693bcdb7ad1@finder"
	sess, err := f.c.GetSessionID(ctx, tok, upstream.SessionIDRequest{WID: li.WID, ToUserName: stranger, MyUserName: me})
	if err != nil || sess != "cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsg" {
		t.Fatalf("GetSessionID = %q, %v", sess, err)
	}
	ps, err := f.c.PrivateSend(ctx, tok, upstream.PrivateSendRequest{WID: li.WID, ToUserName: stranger, MyUserName: me, SessionID: sess, Content: "在的"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.c.SendText(ctx, tok, upstream.SendTextRequest{WID: li.WID, WcID: "wxid_friend", Content: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.srv.Sent()
	want := []sim.Sent{
		{Endpoint: "/privateSend", WID: li.WID, Account: li.WcID, ToUserName: stranger, MyUserName: me, SessionID: sess, Content: "在的", NewMsgID: ps.NewMsgID},
		{Endpoint: "/sendText", WID: li.WID, Account: li.WcID, WcID: "wxid_friend", Content: "hi", NewMsgID: st.NewMsgID},
	}
	if len(got) != len(want) {
		t.Fatalf("sent = %+v", got)
	}
	for i := range want {
		got[i].Time = time.Time{}
		if got[i] != want[i] {
			t.Errorf("sent[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if ps.NewMsgID < 1<<53 || st.NewMsgID < 1<<53 {
		t.Errorf("ids %d, %d are not above 2^53", ps.NewMsgID, st.NewMsgID)
	}
	_, err = f.c.PrivateSend(ctx, tok, upstream.PrivateSendRequest{WID: li.WID, ToUserName: stranger, MyUserName: me, Content: "no session"})
	var e *upstream.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "sessionId") {
		t.Fatalf("send without session: err = %v", err)
	}
}

// TestGetSessionIDShapes checks the tolerance for the undocumented reply of
// /getSessionId.
func TestGetSessionIDShapes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		data string
		opts []upstream.Option
		want string
		bad  bool
	}{
		"string":       {data: `"s1@findermsg"`, want: "s1@findermsg"},
		"sessionId":    {data: `{"sessionId":"s2@findermsg"}`, want: "s2@findermsg"},
		"msgSessionId": {data: `{"msgSessionId":"s3@findermsg"}`, want: "s3@findermsg"},
		"configured":   {data: `{"sid":"s4"}`, opts: []upstream.Option{upstream.WithSessionIDFields("sid")}, want: "s4"},
		"missing":      {data: `{"other":"x"}`, bad: true},
		"null":         {data: `null`, bad: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"code":"1000","message":"处理成功","data":` + tc.data + `}`))
			}))
			defer srv.Close()
			c, err := upstream.New(srv.URL, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.GetSessionID(ctxT(t), "t", upstream.SessionIDRequest{WID: "w"})
			var me *upstream.MalformedError
			if tc.bad {
				if !errors.As(err, &me) || me.Endpoint != "/getSessionId" {
					t.Fatalf("err = %v, want a malformed reply", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("GetSessionID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
