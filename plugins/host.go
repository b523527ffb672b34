package plugins

import (
	"context"
	"log/slog"

	"github.com/finderbot/finderbot/sdk"
)

// Host is what the daemon offers plugins. The Manager calls it on behalf of
// the plugin named by the plugin argument, so an implementation scopes the
// key-value store by that name and can apply per-plugin policy. It must be
// safe for concurrent use.
type Host interface {
	// Send puts msg in the durable outbox. msg.Account is always set: the
	// sdk fills in the account of the action the plugin is handling.
	Send(ctx context.Context, plugin string, msg sdk.Send) error
	// Get, Put, Delete and Keys are the plugin's own persistent key-value
	// store.
	Get(ctx context.Context, plugin, key string) (value []byte, found bool, err error)
	Put(ctx context.Context, plugin, key string, value []byte) error
	Delete(ctx context.Context, plugin, key string) error
	// Keys returns the plugin's keys starting with prefix, sorted.
	Keys(ctx context.Context, plugin, prefix string) ([]string, error)
	// Token returns the current access token of the named session.
	Token(ctx context.Context, plugin, session string) (string, error)
}

// scopedHost is the sdk.Host served to one plugin: the daemon's Host with
// the plugin's name filled in, and logging to the daemon's log.
type scopedHost struct {
	name string
	host Host
	log  *slog.Logger
}

var _ sdk.Host = (*scopedHost)(nil)

func (h *scopedHost) Send(ctx context.Context, msg sdk.Send) error {
	return h.host.Send(ctx, h.name, msg)
}

func (h *scopedHost) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return h.host.Get(ctx, h.name, key)
}

func (h *scopedHost) Put(ctx context.Context, key string, value []byte) error {
	return h.host.Put(ctx, h.name, key, value)
}

func (h *scopedHost) Delete(ctx context.Context, key string) error {
	return h.host.Delete(ctx, h.name, key)
}

func (h *scopedHost) Keys(ctx context.Context, prefix string) ([]string, error) {
	return h.host.Keys(ctx, h.name, prefix)
}

func (h *scopedHost) Token(ctx context.Context, session string) (string, error) {
	return h.host.Token(ctx, h.name, session)
}

func (h *scopedHost) Log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) error {
	h.log.LogAttrs(ctx, level, msg, attrs...)
	return nil
}
