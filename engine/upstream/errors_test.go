package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestErrorKinds drives /syncFinder into every kind of failure and checks
// the error's type, its text, and whether it is retryable.
func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault     *sim.Fault
		maxBody   int64
		expire    bool
		kick      bool
		check     func(error) bool
		retryable bool
		text      string
	}{
		"refusal": {
			fault: &sim.Fault{Kind: sim.FaultRefuse},
			check: func(err error) bool { var e *upstream.Error; return errors.As(err, &e) && e.Code == "1001" },
			text:  "upstream: /syncFinder: refused: code 1001: 失败",
		},
		"offline": {
			kick:  true,
			check: func(err error) bool { return errors.Is(err, upstream.ErrOffline) },
			text:  "upstream: /syncFinder: refused: code 1001:",
		},
		"token expired": {
			expire: true,
			check: func(err error) bool {
				return errors.Is(err, upstream.ErrUnauthorized) && !errors.Is(err, upstream.ErrOffline)
			},
			text: "Authorization",
		},
		"http status": {
			fault: &sim.Fault{Kind: sim.FaultStatus, Status: 502},
			check: func(err error) bool {
				var e *upstream.StatusError
				return errors.As(err, &e) && e.StatusCode == 502 && e.Endpoint == "/syncFinder"
			},
			retryable: true,
			text:      "upstream: /syncFinder: HTTP 502 Bad Gateway",
		},
		"http 4xx": {
			fault: &sim.Fault{Kind: sim.FaultStatus, Status: 404},
			check: func(err error) bool { var e *upstream.StatusError; return errors.As(err, &e) && e.StatusCode == 404 },
			text:  "HTTP 404",
		},
		"malformed": {
			fault: &sim.Fault{Kind: sim.FaultMalformed},
			check: func(err error) bool {
				var e *upstream.MalformedError
				return errors.As(err, &e) && e.Endpoint == "/syncFinder"
			},
			retryable: true,
			text:      "upstream: /syncFinder: malformed reply: not a JSON reply envelope",
		},
		"truncated": {
			fault:     &sim.Fault{Kind: sim.FaultTruncated},
			check:     func(err error) bool { var e *upstream.TransportError; return errors.As(err, &e) },
			retryable: true,
			text:      "upstream: /syncFinder: read reply: unexpected EOF",
		},
		"body over the cap": {
			maxBody:   4096,
			check:     func(err error) bool { return errors.Is(err, upstream.ErrBodyTooLarge) },
			retryable: false,
			text:      "(limit 4096 bytes)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var copts []upstream.Option
			if tc.maxBody > 0 {
				copts = append(copts, upstream.WithMaxBodySize(tc.maxBody))
			}
			f := newFixture(t, sim.Options{AutoConfirm: true}, copts...)
			tok, li := f.login(t)
			if tc.fault != nil {
				if _, err := f.srv.AddFault(*tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			if tc.expire && !f.srv.ExpireToken(tok) {
				t.Fatal("token unknown")
			}
			if tc.kick {
				if err := f.srv.Kick(li.WID); err != nil {
					t.Fatal(err)
				}
			}
			page, err := f.c.SyncFinder(ctxT(t), tok, li.WID, "")
			if err == nil {
				t.Fatalf("no error; page of %d", len(page.Messages))
			}
			if !tc.check(err) {
				t.Fatalf("err = %T %v: wrong kind", err, err)
			}
			if got := upstream.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tc.retryable)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %q, want it to contain %q", err, tc.text)
			}
		})
	}
}

func TestTransportFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := upstream.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.IsOnline(ctxT(t), "t", "w")
	var te *upstream.TransportError
	if !errors.As(err, &te) || te.Endpoint != "/isOnline" || !upstream.Retryable(err) {
		t.Fatalf("err = %T %v, want a retryable *TransportError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "upstream: /isOnline: ") {
		t.Errorf("err = %q", err)
	}
}

// TestReplyShapes feeds the client replies a real server might send and
// checks what it makes of them.
func TestReplyShapes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status int
		body   string
		chunk  bool
		check  func(t *testing.T, c *upstream.Client)
	}{
		"numeric code": {body: `{"code":1000,"message":"处理成功","data":{"list":[],"keyBuff":"k"}}`, check: func(t *testing.T, c *upstream.Client) {
			p, err := c.SyncFinder(ctxT(t), "t", "w", "")
			if err != nil || p.KeyBuff != "k" {
				t.Fatalf("SyncFinder = %+v, %v", p, err)
			}
		}},
		"msg instead of message": {body: `{"code":"1001","msg":"实例不存在","data":null}`, check: func(t *testing.T, c *upstream.Client) {
			_, err := c.SyncFinder(ctxT(t), "t", "w", "")
			if !errors.Is(err, upstream.ErrOffline) {
				t.Fatalf("err = %v, want ErrOffline", err)
			}
		}},
		"missing code": {body: `{"message":"x","data":null}`, check: func(t *testing.T, c *upstream.Client) {
			_, err := c.SyncFinder(ctxT(t), "t", "w", "")
			if err == nil || !strings.Contains(err.Error(), "code is missing") {
				t.Fatalf("err = %v", err)
			}
		}},
		"page without keyBuff": {body: `{"code":"1000","message":"处理成功","data":{"list":[]}}`, check: func(t *testing.T, c *upstream.Client) {
			_, err := c.SyncFinder(ctxT(t), "t", "w", "")
			if err == nil || !strings.Contains(err.Error(), "keyBuff is missing") || !strings.Contains(err.Error(), "/syncFinder") {
				t.Fatalf("err = %v", err)
			}
		}},
		"null data": {body: `{"code":"1000","message":"处理成功","data":null}`, check: func(t *testing.T, c *upstream.Client) {
			_, err := c.PrivateSend(ctxT(t), "t", upstream.PrivateSendRequest{})
			if err == nil || err.Error() != "upstream: /privateSend: malformed reply: data is null" {
				t.Fatalf("err = %v", err)
			}
		}},
		"newMsgId as string": {body: `{"code":"1000","message":"处理成功","data":{"newMsgId":"9008843899058959155"}}`, check: func(t *testing.T, c *upstream.Client) {
			s, err := c.SendText(ctxT(t), "t", upstream.SendTextRequest{})
			if err != nil || s.NewMsgID != 9008843899058959155 {
				t.Fatalf("SendText = %+v, %v", s, err)
			}
		}},
		"newMsgId above 2^53": {body: `{"code":"1000","message":"处理成功","data":{"newMsgId":9008843899058959155}}`, check: func(t *testing.T, c *upstream.Client) {
			s, err := c.SendText(ctxT(t), "t", upstream.SendTextRequest{})
			if err != nil || s.NewMsgID != 9008843899058959155 {
				t.Fatalf("SendText = %+v, %v", s, err)
			}
		}},
		"verify code as success": {body: `{"code":"1000","message":"请在iPad上输入验证码","data":null}`, check: func(t *testing.T, c *upstream.Client) {
			out, err := c.GetIPadLoginInfo(ctxT(t), "t", upstream.LoginInfoRequest{WID: "w"})
			if _, ok := out.(*upstream.VerifyCodeRequired); err != nil || !ok {
				t.Fatalf("outcome = %#v, %v", out, err)
			}
		}},
		"slider as documented": {body: `{"code":"1000","message":"处理成功","data":{"url":"http://115.227.17.31:7878/captcha/index.html?appid=2078688116&uuid=2254249a"}}`, check: func(t *testing.T, c *upstream.Client) {
			out, err := c.GetIPadLoginInfo(ctxT(t), "t", upstream.LoginInfoRequest{WID: "w"})
			if s, ok := out.(*upstream.SliderRequired); err != nil || !ok || !strings.HasPrefix(s.URL, "http://115.227.17.31:7878/") {
				t.Fatalf("outcome = %#v, %v", out, err)
			}
		}},
		"isOnline data false": {body: `{"code":"1000","message":"处理成功","data":false}`, check: func(t *testing.T, c *upstream.Client) {
			ok, err := c.IsOnline(ctxT(t), "t", "w")
			if err != nil || ok {
				t.Fatalf("IsOnline = %v, %v", ok, err)
			}
		}},
		"chunked body over the cap": {chunk: true, body: `{"code":"1000","message":"` + strings.Repeat("x", 5000) + `","data":null}`, check: func(t *testing.T, c *upstream.Client) {
			_, err := c.IsOnline(ctxT(t), "t", "w")
			if !errors.Is(err, upstream.ErrBodyTooLarge) {
				t.Fatalf("err = %v, want ErrBodyTooLarge", err)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "t" {
					http.Error(w, "bad headers", http.StatusBadRequest)
					return
				}
				if tc.chunk {
					w.(http.Flusher).Flush() // no Content-Length: the body streams
				}
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := upstream.New(srv.URL+"/", upstream.WithMaxBodySize(4096))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err  error
		want bool
	}{
		"nil":            {nil, false},
		"refusal":        {&upstream.Error{Endpoint: "/x", Code: "1001"}, false},
		"5xx":            {&upstream.StatusError{StatusCode: 503}, true},
		"429":            {&upstream.StatusError{StatusCode: 429}, true},
		"401":            {&upstream.StatusError{StatusCode: 401}, false},
		"transport":      {&upstream.TransportError{Err: errors.New("connection reset")}, true},
		"timeout":        {&upstream.TransportError{Err: context.DeadlineExceeded}, true},
		"cancelled":      {&upstream.TransportError{Err: context.Canceled}, false},
		"malformed":      {&upstream.MalformedError{Reason: "x"}, true},
		"too large":      {fmt.Errorf("x: %w", upstream.ErrBodyTooLarge), false},
		"wrapped 5xx":    {fmt.Errorf("engine: %w", &upstream.StatusError{StatusCode: 500}), true},
		"plain deadline": {context.DeadlineExceeded, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := upstream.Retryable(tc.err); got != tc.want {
				t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url  string
		opts []upstream.Option
		want string
	}{
		"no scheme":     {url: "127.0.0.1:9100", want: "scheme must be http or https"},
		"ftp":           {url: "ftp://h", want: "scheme must be http or https"},
		"no host":       {url: "http://", want: "host is missing"},
		"query":         {url: "http://h/?a=1", want: "query or fragment"},
		"bad size":      {url: "http://h", opts: []upstream.Option{upstream.WithMaxBodySize(0)}, want: "not a positive size"},
		"nil client":    {url: "http://h", opts: []upstream.Option{upstream.WithHTTPClient(nil)}, want: "client is nil"},
		"neg timeout":   {url: "http://h", opts: []upstream.Option{upstream.WithCallTimeout(-1)}, want: "must not be negative"},
		"control chars": {url: "http://h\x7f", want: "base URL"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := upstream.New(tc.url, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "upstream: ") {
				t.Fatalf("New(%q) err = %v, want %q", tc.url, err, tc.want)
			}
		})
	}
	c, err := upstream.New("http://127.0.0.1:9100/")
	if err != nil || c.BaseURL() != "http://127.0.0.1:9100" {
		t.Fatalf("New = %v, %v", c, err)
	}
}

func TestNewTransport(t *testing.T) {
	t.Parallel()
	tr := upstream.NewTransport()
	if tr.MaxIdleConnsPerHost < 10000 || tr.ResponseHeaderTimeout != 0 || tr.MaxConnsPerHost != 0 {
		t.Fatalf("transport: idle per host %d, header timeout %v, max conns %d",
			tr.MaxIdleConnsPerHost, tr.ResponseHeaderTimeout, tr.MaxConnsPerHost)
	}
}

func stubTokenAuth(t *testing.T, body string) *upstream.TokenAuth {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := upstream.NewTokenAuth(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
