// Package sdktest tests finderbot plugins without a daemon.
//
// Start runs a plugin in the test's own process, behind the same gRPC
// protocol and go-plugin machinery the daemon uses, so a test exercises
// exactly what the daemon will call. Host stands in for the daemon's side:
// an in-memory key-value store, recorded sends and log records, and tokens
// set by the test.
//
//	func TestGreet(t *testing.T) {
//		host := sdktest.NewHost()
//		p := sdktest.Start(t, &greeter{}, host)
//		resp, err := p.Handle(t.Context(), &sdk.HandleRequest{
//			Action:  "greet",
//			Message: sdktest.Text("你好"),
//		})
//		...
//	}
//
// A HandleRequest reaches the plugin as the test gives it, ID included, so a
// test retries an action the way the daemon does by calling Handle again
// with the same ID.
package sdktest

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/finderbot/finderbot/sdk"
)

// Start serves p in-process and returns the daemon's view of it: every call
// goes through gRPC and the sdk's conversions, and p's host callbacks reach
// h. A nil h gets a fresh NewHost. The plugin is stopped, and p.Close called
// if p has one, when the test ends.
func Start(t testing.TB, p sdk.Plugin, h *Host) *sdk.RemotePlugin {
	t.Helper()
	if h == nil {
		h = NewHost()
	}
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go sdk.Serve(p, sdk.WithTestServer(ctx, reattach, closed))

	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-closed:
		cancel()
		t.Fatal("sdktest: plugin stopped before it started")
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("sdktest: plugin did not start within 10s")
	}
	// The "plugin process" is this test: stand in for go-plugin's process
	// watcher, which would poll our own pid forever.
	served := &inProcess{closed: closed}
	rc.ReattachFunc = func() (runner.AttachedRunner, error) { return served, nil }
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.HostPluginSets(h)[sdk.ProtocolVersion],
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off}),
	})
	// client.Kill would leave a reattached client's connections open, so
	// close them, which also asks the server to stop. Cancelling ctx stops
	// the server too, but doing both at once races inside go-plugin: cancel
	// only when the polite way did not work.
	stop := func() {
		defer cancel()
		if cp, err := client.Client(); err == nil {
			_ = cp.Close()
			select {
			case <-closed:
				return
			case <-time.After(5 * time.Second):
			}
		}
		cancel()
		<-closed
	}
	cp, err := client.Client()
	if err != nil {
		stop()
		t.Fatalf("sdktest: connect: %v", err)
	}
	rp, err := sdk.Dispense(cp)
	if err != nil {
		stop()
		t.Fatalf("sdktest: %v", err)
	}
	t.Cleanup(stop)
	return rp
}

// inProcess is the runner.AttachedRunner of a plugin served by the test
// itself: it has exited once Serve has returned.
type inProcess struct{ closed <-chan struct{} }

func (r *inProcess) Wait(ctx context.Context) error {
	select {
	case <-r.closed:
	case <-ctx.Done():
	}
	return nil
}

func (r *inProcess) Kill(context.Context) error { return nil }
func (r *inProcess) ID() string                 { return "sdktest" }

func (r *inProcess) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *inProcess) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// Text returns an incoming Finder private text message, addressed the way
// the daemon delivers them, for use as HandleRequest.Message.
func Text(text string) *sdk.Message {
	return &sdk.Message{
		ID:      7460295062045396231,
		Seq:     1,
		Type:    sdk.TypeText,
		RawType: sdk.RawText,
		Text:    text,
		Content: text,
		From:    "v5_020b0a166104010000000000a2b1c2d3e4f5a6b7c8d9e0f1@findermsgstranger",
		To:      "v2_060000231003b20faec8c7e48f1bc4d3cb03e431b077dc6f5ea0a2a@finder",
		Session: "6c1d5b0b6a0e7b5bd1e3a46b0f2b2c1e@findermsg",
		Time:    time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Account: "test",
	}
}

// Host is an in-memory stand-in for the daemon's side of sdk.Host. It is
// safe for concurrent use, and its zero value is not: use NewHost.
type Host struct {
	mu     sync.Mutex
	kv     map[string][]byte
	sends  []sdk.Send
	logs   []LogRecord
	tokens map[string]string
}

var _ sdk.Host = (*Host)(nil)

// LogRecord is one record a plugin logged through its host.
type LogRecord struct {
	Level   slog.Level
	Message string
	// Attrs holds the record's attributes, values as strings.
	Attrs map[string]string
}

// NewHost returns an empty Host.
func NewHost() *Host {
	return &Host{kv: map[string][]byte{}, tokens: map[string]string{}}
}

// Send records msg; Sends returns what was recorded.
func (h *Host) Send(_ context.Context, msg sdk.Send) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sends = append(h.sends, msg)
	return nil
}

// Get returns the stored value of key.
func (h *Host) Get(_ context.Context, key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.kv[key]
	return slices.Clone(v), ok, nil
}

// Put stores value under key.
func (h *Host) Put(_ context.Context, key string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kv[key] = slices.Clone(value)
	return nil
}

// Delete removes key.
func (h *Host) Delete(_ context.Context, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.kv, key)
	return nil
}

// Keys returns the stored keys starting with prefix, sorted.
func (h *Host) Keys(_ context.Context, prefix string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for k := range h.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Log records a log record; Logs returns what was recorded.
func (h *Host) Log(_ context.Context, level slog.Level, msg string, attrs ...slog.Attr) error {
	rec := LogRecord{Level: level, Message: msg, Attrs: map[string]string{}}
	for _, a := range attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, rec)
	return nil
}

// Token returns the token set with SetToken for session, or an error naming
// the session when there is none.
func (h *Host) Token(_ context.Context, session string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tok, ok := h.tokens[session]
	if !ok {
		return "", &UnknownSessionError{Session: session}
	}
	return tok, nil
}

// SetToken makes Token return token for session.
func (h *Host) SetToken(session, token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens[session] = token
}

// Sends returns the messages sent through Send so far.
func (h *Host) Sends() []sdk.Send {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sends)
}

// Logs returns the records logged so far.
func (h *Host) Logs() []LogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// UnknownSessionError is returned by Host.Token for a session without a
// token.
type UnknownSessionError struct {
	Session string
}

// Error names the session.
func (e *UnknownSessionError) Error() string {
	return "sdktest: no token for session " + e.Session
}
