package upstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	c, err := upstream.NewTokenAuth(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	now := f.clock.Now()

	_, err = c.MobileLogin(ctx, upstream.MobileLoginRequest{Mobile: sim.DefaultMobile, ValidateNo: "000000"})
	var e *upstream.Error
	if !errors.As(err, &e) || e.Code != "400" || e.Endpoint != "/auth/mobile/login" {
		t.Fatalf("wrong SMS code: err = %v", err)
	}

	ml, err := c.MobileLogin(ctx, upstream.MobileLoginRequest{Mobile: sim.DefaultMobile, ValidateNo: sim.DefaultSMSCode})
	if err != nil {
		t.Fatal(err)
	}
	if ml.AccessToken.Value == "" || !ml.AccessToken.Expire.Equal(now.Add(sim.DefaultAccessTokenTTL)) ||
		!ml.RefreshToken.Expire.Equal(now.Add(sim.DefaultRefreshTokenTTL)) || ml.User.Mobile != sim.DefaultMobile || ml.User.ID == 0 {
		t.Fatalf("login = %+v", ml)
	}
	st, err := c.CheckLoginStatus(ctx, ml.AccessToken.Value, "device-1")
	if err != nil || !st.IsLogin {
		t.Fatalf("status = %+v, %v", st, err)
	}

	// The access token expires on the simulator's clock; a refresh renews it.
	f.clock.Advance(sim.DefaultAccessTokenTTL)
	if _, err := c.CheckLoginStatus(ctx, ml.AccessToken.Value, "device-1"); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("expired access token: err = %v, want ErrUnauthorized", err)
	}
	tok, err := c.Refresh(ctx, ml.AccessToken.Value, ml.RefreshToken.Value)
	if err != nil || tok.Value == ml.AccessToken.Value || !tok.Expire.Equal(f.clock.Now().Add(sim.DefaultAccessTokenTTL)) {
		t.Fatalf("refresh = %+v, %v", tok, err)
	}
	if st, err := c.CheckLoginStatus(ctx, tok.Value, "device-1"); err != nil || !st.IsLogin {
		t.Fatalf("status after refresh = %+v, %v", st, err)
	}

	// A login elsewhere kicks this session.
	kickAt := f.clock.Now()
	if !f.srv.KickDevice(sim.DefaultMobile) {
		t.Fatal("no session to kick")
	}
	st, err = c.CheckLoginStatus(ctx, tok.Value, "device-1")
	if err != nil || st.IsLogin || !st.LastLoginTime.Equal(kickAt) {
		t.Fatalf("kicked status = %+v, %v", st, err)
	}
	if _, err := c.Refresh(ctx, tok.Value, ml.RefreshToken.Value); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("refresh of a kicked session: err = %v", err)
	}

	// ExpireToken ends a refresh token early.
	ml2, err := c.MobileLogin(ctx, upstream.MobileLoginRequest{Mobile: sim.DefaultMobile, ValidateNo: sim.DefaultSMSCode})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ExpireToken(ml2.RefreshToken.Value)
	if _, err := c.Refresh(ctx, ml2.AccessToken.Value, ml2.RefreshToken.Value); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("refresh with an expired token: err = %v", err)
	}
}

func TestAppKeyAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	c, err := upstream.NewAppKeyAuth(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	req := upstream.AppKeyLoginRequest{AppKey: sim.DefaultAppKey, AppSecret: sim.DefaultAppSecret}
	first, err := c.Login(ctx, req)
	if err != nil || f.srv.AppKeyTokenState(first) != sim.TokenValid {
		t.Fatalf("login = %q, %v", first, err)
	}
	second, err := c.Login(ctx, req)
	if err != nil || second == first {
		t.Fatalf("second login = %q, %v", second, err)
	}
	if got := f.srv.AppKeyTokenState(first); got != sim.TokenKicked {
		t.Errorf("first holder = %s, want kicked", got)
	}
	f.clock.Advance(upstream.AppKeyTokenTTL)
	if got := f.srv.AppKeyTokenState(second); got != sim.TokenExpired {
		t.Errorf("after a day = %s, want expired", got)
	}

	_, err = c.Login(ctx, upstream.AppKeyLoginRequest{AppKey: "nope", AppSecret: "x"})
	var e *upstream.Error
	if !errors.As(err, &e) || e.Code != "1001" || e.Message != "apiKey does not exist" {
		t.Fatalf("unknown key: err = %v", err)
	}
	if err.Error() != "upstream: /api-cloud/auth/login: refused: code 1001: apiKey does not exist" {
		t.Errorf("err = %q", err)
	}
}

func TestParseTimes(t *testing.T) {
	t.Parallel()
	// Expiry formats the token API may send, through a stub reply.
	tests := map[string]struct {
		expire string
		want   time.Time
	}{
		"rfc3339":     {"2019-08-24T14:15:22Z", time.Date(2019, 8, 24, 14, 15, 22, 0, time.UTC)},
		"china local": {"2019-08-24 22:15:22", time.Date(2019, 8, 24, 14, 15, 22, 0, time.UTC)},
		"unix millis": {"1566656122000", time.Date(2019, 8, 24, 14, 15, 22, 0, time.UTC)},
		"empty":       {"", time.Time{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := stubTokenAuth(t, `{"code":0,"msg":"","data":{"expire":"`+tc.expire+`","value":"v"}}`)
			tok, err := c.Refresh(ctxT(t), "a", "r")
			if err != nil || !tok.Expire.Equal(tc.want) {
				t.Fatalf("Refresh = %+v, %v; want expiry %v", tok, err, tc.want)
			}
		})
	}
	c := stubTokenAuth(t, `{"code":0,"msg":"","data":{"expire":"next tuesday","value":"v"}}`)
	if _, err := c.Refresh(ctxT(t), "a", "r"); err == nil || err.Error() != `upstream: /app/auth/token/refresh: malformed reply: data.expire: unrecognised date-time "next tuesday"` {
		t.Fatalf("bad expiry: err = %v", err)
	}
	c = stubTokenAuth(t, `{"code":"0","msg":"","data":{"expire":"","value":"v"}}`)
	if _, err := c.Refresh(ctxT(t), "a", "r"); err != nil {
		t.Fatalf("string code 0: err = %v", err)
	}
	c = stubTokenAuth(t, `{"code":"ok","msg":"","data":null}`)
	if _, err := c.Refresh(ctxT(t), "a", "r"); err == nil {
		t.Fatal("a non-integer code was accepted")
	}
}
