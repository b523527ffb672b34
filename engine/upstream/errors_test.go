package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

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

// errShape names the kind of a client error, for TestRejected.
func errShape(err error) string {
	var (
		e  *upstream.Error
		se *upstream.StatusError
		te *upstream.TransportError
		me *upstream.MalformedError
	)
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, upstream.ErrBodyTooLarge):
		return "too large"
	case errors.As(err, &me):
		return "malformed"
	case errors.As(err, &e):
		return "refusal"
	case errors.As(err, &se):
		return fmt.Sprintf("status %d", se.StatusCode)
	case errors.As(err, &te):
		shape := "unwritten"
		if te.Written {
			shape = "written"
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			shape += " timeout"
		case errors.Is(err, context.Canceled):
			shape += " cancelled"
		}
		return shape
	}
	return "other"
}

// answer is a handler that answers every request with status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// TestRejected makes /privateSend fail in every way a network and an
// upstream can, and checks the error's shape and whether it proves the
// upstream did not act. Against the simulator it also checks the promise
// itself: a rejected send was not performed.
func TestRejected(t *testing.T) {
	t.Parallel()
	const sentOK = `{"code":"1000","message":"处理成功","data":{"type":1,"msgId":7,"newMsgId":9008843899058959155,"createTime":1711566487}}`
	tests := map[string]struct {
		// Exactly one of these makes the failure.
		handler http.HandlerFunc // a server answering the call
		closed  bool             // nothing listens at the address
		fault   *sim.Fault       // a simulator fault on /privateSend
		sent    int              // with fault: how many the simulator sent
		err     error            // no call: the error itself

		opts   []upstream.Option
		cancel bool // the ctx is done before the call
		shape  string
		want   bool
	}{
		"nil":                     {handler: answer(200, sentOK), shape: "nil"},
		"refused connection":      {closed: true, shape: "unwritten", want: true},
		"ctx done before sending": {handler: answer(200, sentOK), cancel: true, shape: "unwritten cancelled", want: true},
		"reset after reading the body": {handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with a reset, not a FIN
			}
			_ = conn.Close()
		}, shape: "written"},
		"hangs past the call timeout": {handler: func(w http.ResponseWriter, r *http.Request) {
			// Reading the whole body lets the server notice when the client
			// goes away, which ends r's context.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, opts: []upstream.Option{upstream.WithCallTimeout(100 * time.Millisecond)}, shape: "written timeout"},
		"body cut short": {handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(sentOK)))
			_, _ = w.Write([]byte(sentOK[:20]))
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}, shape: "written"},
		"malformed JSON": {handler: answer(200, `{"code":"1000","message":"处理成功","data":{`), shape: "malformed"},
		"no newMsgId":    {handler: answer(200, `{"code":"1000","message":"处理成功","data":{"msgId":7}}`), shape: "malformed"},
		"body over the cap": {handler: answer(200, sentOK), opts: []upstream.Option{upstream.WithMaxBodySize(16)},
			shape: "too large"},
		"code 1001":              {handler: answer(200, `{"code":"1001","message":"失败","data":null}`), shape: "refusal", want: true},
		"offline":                {handler: answer(200, `{"code":"1001","message":"实例不存在","data":null}`), shape: "refusal", want: true},
		"token refused":          {handler: answer(200, `{"code":"1001","message":"Authorization已过期","data":null}`), shape: "refusal", want: true},
		"400":                    {handler: answer(400, "bad request"), shape: "status 400", want: true},
		"401":                    {handler: answer(401, ""), shape: "status 401", want: true},
		"403":                    {handler: answer(403, ""), shape: "status 403", want: true},
		"404":                    {handler: answer(404, ""), shape: "status 404", want: true},
		"429":                    {handler: answer(429, "slow down"), shape: "status 429", want: true},
		"500":                    {handler: answer(500, ""), shape: "status 500"},
		"502":                    {handler: answer(502, "<html>bad gateway</html>"), shape: "status 502"},
		"503":                    {handler: answer(503, "<html>unavailable</html>"), shape: "status 503", want: true},
		"504":                    {handler: answer(504, ""), shape: "status 504"},
		"sim refuse":             {fault: &sim.Fault{Kind: sim.FaultRefuse}, shape: "refusal", want: true},
		"sim 503":                {fault: &sim.Fault{Kind: sim.FaultStatus, Status: 503}, shape: "status 503", want: true},
		"sim malformed":          {fault: &sim.Fault{Kind: sim.FaultMalformed}, shape: "malformed"},
		"sim truncated":          {fault: &sim.Fault{Kind: sim.FaultTruncated}, sent: 1, shape: "written"},
		"sim late":               {fault: &sim.Fault{Kind: sim.FaultLate, Latency: time.Hour}, opts: []upstream.Option{upstream.WithCallTimeout(100 * time.Millisecond)}, sent: 1, shape: "written timeout"},
		"sim accepted malformed": {fault: &sim.Fault{Kind: sim.FaultAcceptedMalformed}, sent: 1, shape: "malformed"},
		"wrapped unwritten": {err: fmt.Errorf("outbox: %w", &upstream.TransportError{Endpoint: "/privateSend", Err: errors.New("dial tcp: connection refused")}),
			shape: "unwritten", want: true},
		"wrapped 429": {err: fmt.Errorf("outbox: %w", &upstream.StatusError{Endpoint: "/privateSend", StatusCode: 429}),
			shape: "status 429", want: true},
		"bare deadline": {err: context.DeadlineExceeded, shape: "other"},
		"other error":   {err: errors.New("outbox: store closed"), shape: "other"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			if tc.cancel {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			err := tc.err
			switch {
			case tc.handler != nil || tc.closed:
				srv := httptest.NewServer(tc.handler)
				if tc.closed {
					srv.Close() // nothing listens at srv.URL now
				} else {
					defer srv.Close()
				}
				c, cerr := upstream.New(srv.URL, tc.opts...)
				if cerr != nil {
					t.Fatal(cerr)
				}
				_, err = c.PrivateSend(ctx, "t", upstream.PrivateSendRequest{WID: "w", ToUserName: "to", MyUserName: "me", SessionID: "s", Content: "hi"})
			case tc.fault != nil:
				f := newFixture(t, sim.Options{AutoConfirm: true})
				tok, li := f.login(t)
				fault := *tc.fault
				fault.Endpoint = "/privateSend"
				if _, ferr := f.srv.AddFault(fault); ferr != nil {
					t.Fatal(ferr)
				}
				c, cerr := upstream.New(f.srv.URL, tc.opts...)
				if cerr != nil {
					t.Fatal(cerr)
				}
				_, err = c.PrivateSend(ctx, tok, upstream.PrivateSendRequest{WID: li.WID,
					ToUserName: "fv1_abc@findermsgstranger", MyUserName: "v2_me@finder", SessionID: "abc@findermsg", Content: "reply"})
				// The promise Rejected makes: a rejected send was not sent.
				if sent := len(f.srv.Sent()); sent != tc.sent || (upstream.Rejected(err) && sent != 0) {
					t.Errorf("the simulator sent %d, want %d", sent, tc.sent)
				}
			}
			if got := errShape(err); got != tc.shape {
				t.Fatalf("err = %v: shape %q, want %q", err, got, tc.shape)
			}
			if got := upstream.Rejected(err); got != tc.want {
				t.Errorf("Rejected(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}
