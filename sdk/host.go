package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
)

// Host is the daemon, as a plugin sees it. A plugin reaches it through
// HandleRequest.Host; every method is a call into the daemon process and
// takes ctx for its deadline.
type Host interface {
	// Send queues a message in the daemon's durable outbox. It goes out
	// under the same per-account rate limit as every other message, so Send
	// returns once the message is queued, not once it is delivered. An
	// empty msg.Account means the account of the action being handled.
	Send(ctx context.Context, msg Send) error
	// Get returns the value stored under key, and whether there was one.
	// The store is the plugin's own: keys never collide with other plugins'.
	// It survives daemon and plugin restarts.
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
	// Put stores value under key, replacing any previous value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys returns the plugin's keys that start with prefix, sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Log writes a record to the daemon's log under the plugin's name.
	Log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) error
	// Token returns the current access token of the named upstream session.
	// The daemon keeps tokens fresh; a plugin asks each time it needs one
	// rather than keeping it.
	Token(ctx context.Context, session string) (string, error)
}

// ErrNoHost is returned by the Host of a plugin that is not connected to a
// daemon.
var ErrNoHost = errors.New("sdk: no host attached")

// NewLogger returns a logger that writes through h.Log, so a plugin's records
// land in the daemon's log under the plugin's name. Records logged with a
// context (InfoContext and friends) use its deadline; others get a short one
// of their own.
func NewLogger(h Host) *slog.Logger {
	return slog.New(&hostHandler{host: h})
}

// hostHandler is the slog.Handler behind NewLogger. Attributes and groups are
// flattened to "group.key" pairs, which is what the wire carries.
type hostHandler struct {
	host   Host
	attrs  []slog.Attr
	prefix string
}

func (h *hostHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *hostHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendFlat(attrs, h.prefix, a)
		return true
	})
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return h.host.Log(ctx, r.Level, r.Message, attrs...)
}

func (h *hostHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		n.attrs = appendFlat(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *hostHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

func appendFlat(dst []slog.Attr, prefix string, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			dst = appendFlat(dst, p, g)
		}
		return dst
	}
	a.Key = prefix + a.Key
	return append(dst, a)
}

// hostClient is the plugin side of Host: each method is a gRPC call to the
// daemon over the go-plugin broker.
type hostClient struct {
	c pluginpb.HostClient
}

var _ Host = (*hostClient)(nil)

func (h *hostClient) Send(ctx context.Context, msg Send) error {
	_, err := h.c.Send(ctx, &pluginpb.SendRequest{Send: sendToProto(msg)})
	return hostErr("send", err)
}

func (h *hostClient) Get(ctx context.Context, key string) ([]byte, bool, error) {
	r, err := h.c.KVGet(ctx, &pluginpb.KVGetRequest{Key: key})
	if err != nil {
		return nil, false, hostErr("get "+shortName(key), err)
	}
	return r.GetValue(), r.GetFound(), nil
}

func (h *hostClient) Put(ctx context.Context, key string, value []byte) error {
	_, err := h.c.KVPut(ctx, &pluginpb.KVPutRequest{Key: key, Value: value})
	return hostErr("put "+shortName(key), err)
}

func (h *hostClient) Delete(ctx context.Context, key string) error {
	_, err := h.c.KVDelete(ctx, &pluginpb.KVDeleteRequest{Key: key})
	return hostErr("delete "+shortName(key), err)
}

func (h *hostClient) Keys(ctx context.Context, prefix string) ([]string, error) {
	r, err := h.c.KVList(ctx, &pluginpb.KVListRequest{Prefix: prefix})
	if err != nil {
		return nil, hostErr("keys", err)
	}
	return r.GetKeys(), nil
}

func (h *hostClient) Log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) error {
	req := &pluginpb.LogRequest{Level: int64(level), Message: msg}
	for _, a := range attrs {
		req.Attrs = append(req.Attrs, &pluginpb.LogAttr{Key: a.Key, Value: a.Value.String()})
	}
	_, err := h.c.Log(ctx, req)
	return hostErr("log", err)
}

func (h *hostClient) Token(ctx context.Context, session string) (string, error) {
	r, err := h.c.Token(ctx, &pluginpb.TokenRequest{Session: session})
	if err != nil {
		return "", hostErr("token "+shortName(session), err)
	}
	return r.GetToken(), nil
}

// shortName is a key or session name as an error quotes it: a name past
// MaxNameBytes is the reason for the error, not something to repeat.
func shortName(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return CutText(s, n) + "…"
}

// hostErr turns a failed host call into an error that reads like the
// daemon's own, keeping context cancellation recognisable with errors.Is.
func hostErr(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("sdk: host: %s: %w", op, err)
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return fmt.Errorf("sdk: host: %s: %w", op, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("sdk: host: %s: %w", op, context.Canceled)
	case codes.Unavailable:
		return fmt.Errorf("sdk: host: %s: daemon unavailable: %s", op, st.Message())
	}
	return fmt.Errorf("sdk: host: %s: %s", op, st.Message())
}

// noHost is the Host of a plugin not attached to a daemon.
type noHost struct{}

func (noHost) Send(context.Context, Send) error                            { return ErrNoHost }
func (noHost) Get(context.Context, string) ([]byte, bool, error)           { return nil, false, ErrNoHost }
func (noHost) Put(context.Context, string, []byte) error                   { return ErrNoHost }
func (noHost) Delete(context.Context, string) error                        { return ErrNoHost }
func (noHost) Keys(context.Context, string) ([]string, error)              { return nil, ErrNoHost }
func (noHost) Token(context.Context, string) (string, error)               { return "", ErrNoHost }
func (noHost) Log(context.Context, slog.Level, string, ...slog.Attr) error { return ErrNoHost }

// hostServer is the daemon side of Host: it serves a Host implementation to
// one plugin over the go-plugin broker.
type hostServer struct {
	pluginpb.UnimplementedHostServer
	host Host
}

// The methods of hostServer refuse what is past the bounds on what a plugin
// hands the daemon (MaxResponseText, MaxNameBytes) before the Host sees it,
// so nothing past them is stored or logged.

func (s *hostServer) Send(ctx context.Context, r *pluginpb.SendRequest) (*pluginpb.SendResponse, error) {
	msg := sendFromProto(r.GetSend())
	if err := checkSend(msg); err != nil {
		return nil, refused(err)
	}
	return &pluginpb.SendResponse{}, s.host.Send(ctx, msg)
}

// refused is the error a plugin gets for a host call past the bounds.
func refused(err error) error {
	return status.Error(codes.InvalidArgument, err.Error()+"; refused")
}

func (s *hostServer) KVGet(ctx context.Context, r *pluginpb.KVGetRequest) (*pluginpb.KVGetResponse, error) {
	if err := checkName("key", r.GetKey()); err != nil {
		return nil, refused(err)
	}
	v, ok, err := s.host.Get(ctx, r.GetKey())
	if err != nil {
		return nil, err
	}
	return &pluginpb.KVGetResponse{Value: v, Found: ok}, nil
}

func (s *hostServer) KVPut(ctx context.Context, r *pluginpb.KVPutRequest) (*pluginpb.KVPutResponse, error) {
	if err := checkName("key", r.GetKey()); err != nil {
		return nil, refused(err)
	}
	return &pluginpb.KVPutResponse{}, s.host.Put(ctx, r.GetKey(), r.GetValue())
}

func (s *hostServer) KVDelete(ctx context.Context, r *pluginpb.KVDeleteRequest) (*pluginpb.KVDeleteResponse, error) {
	if err := checkName("key", r.GetKey()); err != nil {
		return nil, refused(err)
	}
	return &pluginpb.KVDeleteResponse{}, s.host.Delete(ctx, r.GetKey())
}

func (s *hostServer) KVList(ctx context.Context, r *pluginpb.KVListRequest) (*pluginpb.KVListResponse, error) {
	if err := checkName("prefix", r.GetPrefix()); err != nil {
		return nil, refused(err)
	}
	keys, err := s.host.Keys(ctx, r.GetPrefix())
	if err != nil {
		return nil, err
	}
	return &pluginpb.KVListResponse{Keys: keys}, nil
}

func (s *hostServer) Log(ctx context.Context, r *pluginpb.LogRequest) (*pluginpb.LogResponse, error) {
	attrs := make([]slog.Attr, 0, len(r.GetAttrs()))
	for _, a := range r.GetAttrs() {
		attrs = append(attrs, slog.String(a.GetKey(), a.GetValue()))
	}
	return &pluginpb.LogResponse{}, s.host.Log(ctx, slog.Level(r.GetLevel()), r.GetMessage(), attrs...)
}

func (s *hostServer) Token(ctx context.Context, r *pluginpb.TokenRequest) (*pluginpb.TokenResponse, error) {
	if err := checkName("session", r.GetSession()); err != nil {
		return nil, refused(err)
	}
	tok, err := s.host.Token(ctx, r.GetSession())
	if err != nil {
		return nil, err
	}
	return &pluginpb.TokenResponse{Token: tok}, nil
}
