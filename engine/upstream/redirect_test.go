package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream"
)

// recorder is an HTTP server that records every request it receives.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.String())
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"1000","message":"ok","data":{}}`))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestNoRedirects points every client at an upstream that redirects each
// call to a second server, with every redirect status, and checks that the
// second server receives nothing — not the member password, not the app
// secret, not a token — and that the error names the endpoint, the status
// and the Location. A caller's own http.Client, which would follow, is
// overridden too.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for clientName, hc := range map[string]*http.Client{
			"default":         nil,
			"caller's client": {},
			"NewHTTPClient":   upstream.NewHTTPClient(upstream.NewTransport()),
		} {
			t.Run(fmt.Sprintf("%d/%s", status, clientName), func(t *testing.T) {
				t.Parallel()
				evil := newRecorder(t)
				first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, evil.URL+"/x"+r.URL.Path, status)
				}))
				t.Cleanup(first.Close)
				var opts []upstream.Option
				if hc != nil {
					opts = append(opts, upstream.WithHTTPClient(hc))
				}
				c, err := upstream.New(first.URL, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ta, err := upstream.NewTokenAuth(first.URL, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ak, err := upstream.NewAppKeyAuth(first.URL, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				calls := map[string]func() error{
					"/member/login": func() error { _, err := c.MemberLogin(ctx, "ops", "pw-secret"); return err },
					"/getIPadLoginInfo": func() error {
						_, err := c.GetIPadLoginInfo(ctx, "tok-secret", upstream.LoginInfoRequest{WID: "w1"})
						return err
					},
					"/syncFinder": func() error { _, err := c.SyncFinder(ctx, "tok-secret", "w1", ""); return err },
					"/auth/mobile/login": func() error {
						_, err := ta.MobileLogin(ctx, upstream.MobileLoginRequest{Mobile: "13800138000", ValidateNo: "123456"})
						return err
					},
					"/wx/pc/check-login-status": func() error {
						_, err := ta.CheckLoginStatus(ctx, "access-secret", "dev-1")
						return err
					},
					"/api-cloud/auth/login": func() error {
						_, err := ak.Login(ctx, upstream.AppKeyLoginRequest{AppKey: "k", AppSecret: "app-secret"})
						return err
					},
				}
				for ep, call := range calls {
					err := call()
					var re *upstream.RedirectError
					if !errors.As(err, &re) {
						t.Fatalf("%s: err = %v, want a *RedirectError", ep, err)
					}
					msg := err.Error()
					want := fmt.Sprintf("upstream: %s answered %d %s to %s/x", ep, status, http.StatusText(status), evil.URL)
					if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "does not follow redirects") {
						t.Errorf("%s: error = %q, want it to start with %q", ep, msg, want)
					}
					if upstream.Retryable(err) || upstream.Rejected(err) {
						t.Errorf("%s: Retryable = %v, Rejected = %v; want false, false", ep, upstream.Retryable(err), upstream.Rejected(err))
					}
				}
				if got := evil.requests(); len(got) != 0 {
					t.Fatalf("the redirect target received %d requests: %q", len(got), got)
				}
			})
		}
	}
}

// TestNewHTTPClientRefusesRedirects uses the client constructor on its own,
// as any other upstream caller would: it hands back the 3xx instead of
// following it.
func TestNewHTTPClientRefusesRedirects(t *testing.T) {
	t.Parallel()
	evil := newRecorder(t)
	first := httptest.NewServer(http.RedirectHandler(evil.URL, http.StatusTemporaryRedirect))
	t.Cleanup(first.Close)
	resp, err := upstream.NewHTTPClient(nil).Post(first.URL, "application/json", strings.NewReader(`{"password":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || len(evil.requests()) != 0 {
		t.Fatalf("status %d, redirect target saw %q", resp.StatusCode, evil.requests())
	}
}
