// Package upstream is the typed client of the outside HTTP APIs finderbot
// talks to: the E云管家 (wkteam) style iPad-protocol API (Client), the
// mobile-number token API (TokenAuth) and the app-key API (AppKeyAuth).
//
// Every call takes a ctx, is bounded by a per-call deadline, caps the reply
// body, and fails with a typed error: *Error (the upstream refused),
// *StatusError (HTTP status not 2xx), *RedirectError (a 3xx, never
// followed), *TransportError (no reply at all), *MalformedError (a reply
// that could not be understood), or ErrBodyTooLarge.
// errors.Is(err, ErrOffline) tells that a wkteam instance must log in again,
// Retryable(err) tells transient failures from permanent ones, and
// Rejected(err) tells whether the failure proves the upstream did not act on
// the call, which a send must know before it is made again.
//
// The simulator in package upstream/sim serves all three APIs for tests and
// for trying finderbot without a real account.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
)

// Defaults of the options.
const (
	// DefaultMaxBodySize caps reply bodies. A /syncFinder page of a few
	// dozen messages is tens of KiB; 8 MiB leaves room for pages of
	// thousands while stopping a runaway reply.
	DefaultMaxBodySize = 8 << 20
	// DefaultCallTimeout bounds every ordinary call.
	DefaultCallTimeout = 30 * time.Second
	// DefaultLongPollTimeout bounds /getIPadLoginInfo, which the upstream
	// may hold for up to 250 s before answering.
	DefaultLongPollTimeout = 260 * time.Second
)

// Default patterns used to classify refusals by their message. The wkteam
// documentation does not list its failure messages, so these are inferred
// and can be replaced with WithOfflinePatterns, WithAuthPatterns and
// WithVerifyCodePatterns.
var (
	DefaultOfflinePatterns    = []string{"离线", "掉线", "不在线", "未登录", "实例不存在", "wId不存在", "offline", "not online", "not logged in"}
	DefaultAuthPatterns       = []string{"Authorization", "token", "Token", "授权", "鉴权", "unauthorized"}
	DefaultVerifyCodePatterns = []string{"验证码", "verify code", "verifyCode"}
	DefaultSessionIDFields    = []string{"sessionId", "msgSessionId", "session_id", "SessionId"}
)

// Option configures a Client, TokenAuth or AppKeyAuth.
type Option func(*config)

type config struct {
	hc              *http.Client
	maxBody         int64
	callTimeout     time.Duration
	longPollTimeout time.Duration
	offline         []string
	auth            []string
	verifyCode      []string
	sessionFields   []string
	authPrefix      *string
	imageSend       *ImageSend
}

// WithHTTPClient makes the client send through hc instead of a client on
// the shared transport. A Timeout set on hc applies to ordinary calls only;
// the long poll uses a copy without it so that it is never cut short. The
// client sends through a copy of hc whose CheckRedirect refuses every
// redirect, whatever hc's own says (see NewHTTPClient).
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.hc = hc } }

// WithMaxBodySize caps reply bodies at n bytes (default DefaultMaxBodySize).
func WithMaxBodySize(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithCallTimeout sets the deadline of every ordinary call (default
// DefaultCallTimeout); 0 leaves calls bounded by their ctx alone. It never
// applies to the /getIPadLoginInfo long poll.
func WithCallTimeout(d time.Duration) Option { return func(c *config) { c.callTimeout = d } }

// WithLongPollTimeout sets the deadline of the /getIPadLoginInfo long poll
// (default DefaultLongPollTimeout); 0 leaves it bounded by its ctx alone.
func WithLongPollTimeout(d time.Duration) Option {
	return func(c *config) { c.longPollTimeout = d }
}

// WithOfflinePatterns replaces the substrings that mark a refusal message as
// "instance offline" (default DefaultOfflinePatterns).
func WithOfflinePatterns(p ...string) Option { return func(c *config) { c.offline = p } }

// WithAuthPatterns replaces the substrings that mark a refusal message as
// "token refused" (default DefaultAuthPatterns).
func WithAuthPatterns(p ...string) Option { return func(c *config) { c.auth = p } }

// WithVerifyCodePatterns replaces the substrings that mark a
// /getIPadLoginInfo reply as a request for the verify code shown on the
// phone (default DefaultVerifyCodePatterns).
func WithVerifyCodePatterns(p ...string) Option { return func(c *config) { c.verifyCode = p } }

// WithSessionIDFields replaces the field names looked up, in order, in the
// data object of a /getSessionId reply (default DefaultSessionIDFields).
func WithSessionIDFields(names ...string) Option {
	return func(c *config) { c.sessionFields = names }
}

// WithAuthPrefix sets what is written before the token in the Authorization
// header. wkteam wants the raw token (""); the token API defaults to
// "Bearer ".
func WithAuthPrefix(prefix string) Option { return func(c *config) { c.authPrefix = &prefix } }

// NewTransport returns an http.Transport tuned for many accounts polling one
// host: its keep-alive pool holds thousands of idle connections per host
// (the default keeps 2, which makes every poll of a large fleet dial anew),
// and it sets no response-header timeout, so long polls are bounded by their
// ctx alone. Share one among all clients of a process.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit across hosts; the per-host limit applies
	t.MaxIdleConnsPerHost = 16384
	t.MaxConnsPerHost = 0
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0
	return t
}

var defaultHTTPClient = NewHTTPClient(NewTransport())

// NewHTTPClient returns an http.Client for calls to an upstream: it sends
// through rt (http.DefaultTransport when nil) and never follows a redirect,
// handing the 3xx reply back instead. Following one would send the request
// again, with the member password, the app secret or a token in it, to
// whatever host the reply names. Every upstream client of the daemon is
// made here, and the API clients of this package impose the same rule on
// any client given to them (WithHTTPClient).
func NewHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: refuseRedirect}
}

// refuseRedirect is the CheckRedirect of every upstream client.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// base is what the three API clients share: the base URL, the HTTP clients
// and the limits.
type base struct {
	url      string
	hc       *http.Client
	lpHC     *http.Client
	maxBody  int64
	timeout  time.Duration
	longPoll time.Duration
	prefix   string
	cfg      config
}

func newBase(baseURL, authPrefix string, opts []Option) (*base, error) {
	cfg := config{
		hc:              defaultHTTPClient,
		maxBody:         DefaultMaxBodySize,
		callTimeout:     DefaultCallTimeout,
		longPollTimeout: DefaultLongPollTimeout,
		offline:         DefaultOfflinePatterns,
		auth:            DefaultAuthPatterns,
		verifyCode:      DefaultVerifyCodePatterns,
		sessionFields:   DefaultSessionIDFields,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if !strings.Contains(baseURL, "://") {
		return nil, fmt.Errorf("upstream: base URL %q: scheme must be http or https, as in http://127.0.0.1:9100", baseURL)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("upstream: base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("upstream: base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("upstream: base URL %q: host is missing", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream: base URL %q: must not have a query or fragment", baseURL)
	}
	if cfg.hc == nil {
		return nil, errors.New("upstream: WithHTTPClient: client is nil")
	}
	if cfg.maxBody <= 0 {
		return nil, fmt.Errorf("upstream: WithMaxBodySize: %d is not a positive size", cfg.maxBody)
	}
	if cfg.callTimeout < 0 || cfg.longPollTimeout < 0 {
		return nil, errors.New("upstream: timeouts must not be negative")
	}
	if cfg.authPrefix != nil {
		authPrefix = *cfg.authPrefix
	}
	hc := *cfg.hc
	hc.CheckRedirect = refuseRedirect
	lp := &hc
	if hc.Timeout != 0 {
		c := hc
		c.Timeout = 0
		lp = &c
	}
	return &base{
		url:      strings.TrimRight(u.String(), "/"),
		hc:       &hc,
		lpHC:     lp,
		maxBody:  cfg.maxBody,
		timeout:  cfg.callTimeout,
		longPoll: cfg.longPollTimeout,
		prefix:   authPrefix,
		cfg:      cfg,
	}, nil
}

// request describes one HTTP exchange.
type request struct {
	method   string
	endpoint string // for errors, e.g. "/syncFinder"
	path     string // defaults to endpoint
	token    string
	body     any
	longPoll bool
}

// do sends the request and returns the reply body of a 2xx reply.
func (b *base) do(ctx context.Context, r request) ([]byte, error) {
	timeout, hc := b.timeout, b.hc
	if r.longPoll {
		timeout, hc = b.longPoll, b.lpHC
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var body io.Reader
	if r.body != nil {
		data, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("upstream: %s: encode request: %w", r.endpoint, err)
		}
		body = bytes.NewReader(data)
	}
	path := r.path
	if path == "" {
		path = r.endpoint
	}
	// written records whether the whole request reached the connection, so
	// that a failure can tell "never sent" (safe to repeat) from "sent, no
	// usable answer" (the upstream may have acted). The transport calls
	// WroteRequest from its own goroutine, hence the atomic. It is never
	// reset: when the transport retries on a fresh connection, an earlier
	// attempt that was written keeps the call marked as written.
	t := new(trace)
	t.ClientTrace.WroteRequest = t.wroteRequest
	ctx = httptrace.WithClientTrace(ctx, &t.ClientTrace)
	req, err := http.NewRequestWithContext(ctx, r.method, b.url+path, body)
	if err != nil {
		return nil, fmt.Errorf("upstream: %s: %w", r.endpoint, err)
	}
	// The headers' canonical names and shared values, set without
	// Header.Set's copies: an idle account polls every second.
	if body != nil {
		req.Header["Content-Type"] = jsonMIME
	}
	req.Header["Accept"] = jsonMIME
	if r.token != "" {
		req.Header["Authorization"] = []string{b.prefix + r.token}
	}
	resp, err := send(hc, req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &TransportError{Endpoint: r.endpoint, Err: err, Written: t.written.Load()}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		loc := resp.Header.Get("Location")
		if u, err := resp.Location(); err == nil {
			loc = u.String()
		}
		return nil, &RedirectError{Endpoint: r.endpoint, StatusCode: resp.StatusCode, Location: loc}
	}
	data, err := readCapped(resp, b.maxBody)
	if errors.Is(err, ErrBodyTooLarge) {
		return nil, fmt.Errorf("upstream: %s: %w (limit %d bytes)", r.endpoint, ErrBodyTooLarge, b.maxBody)
	}
	if err != nil {
		// The upstream started answering, so it had the request: whatever
		// the trace saw, the call counts as written.
		return nil, &TransportError{Endpoint: r.endpoint, Err: fmt.Errorf("read reply: %w", err), Written: true}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := data
		if len(snippet) > 512 {
			snippet = snippet[:512]
		}
		return nil, &StatusError{Endpoint: r.endpoint, StatusCode: resp.StatusCode, Body: string(snippet)}
	}
	return data, nil
}

// jsonMIME is the value of the Content-Type and Accept headers of every
// call; never modified.
var jsonMIME = []string{"application/json"}

// trace records whether the whole request reached the connection.
type trace struct {
	httptrace.ClientTrace
	written atomic.Bool
}

func (t *trace) wroteRequest(info httptrace.WroteRequestInfo) {
	if info.Err == nil {
		t.written.Store(true)
	}
}

// send sends req through hc and returns the reply, which is never
// followed: a 3xx is returned as it is. A client without a cookie jar or
// a timeout of its own — every one the daemon makes — would add nothing to
// its transport for these calls but garbage (a copy of the headers kept
// for the redirects it refuses, of the URL, an error wrapper), so the
// request goes to the transport itself, as the client would send it.
func send(hc *http.Client, req *http.Request) (*http.Response, error) {
	if hc.Jar != nil || hc.Timeout != 0 {
		return hc.Do(req)
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	switch {
	case err != nil:
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	case resp == nil:
		return nil, fmt.Errorf("http: RoundTripper implementation (%T) returned a nil *Response with a nil error", rt)
	case resp.Body == nil:
		if resp.ContentLength > 0 && req.Method != http.MethodHead {
			return nil, fmt.Errorf("http: RoundTripper implementation (%T) returned a *Response with content length %d but a nil Body", rt, resp.ContentLength)
		}
		resp.Body = http.NoBody
	}
	return resp, nil
}

// readCapped reads the whole body, refusing more than limit bytes. A known
// length is read into a buffer of exactly that size.
func readCapped(resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n > limit {
		return nil, ErrBodyTooLarge
	}
	if n < 0 {
		data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, err
		}
		if int64(len(data)) > limit {
			return nil, ErrBodyTooLarge
		}
		return data, nil
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return data, nil
}
