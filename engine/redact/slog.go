package redact

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
)

// Handler is a slog.Handler that hides the secrets of a Set in every record
// before handing it on: the message and every attribute value, in groups
// and in the attributes given to With, whatever their type (an error, a
// struct, a number) — a value whose printed form holds a secret is handed
// on as its printed form, redacted. Attributes given to With are checked
// again whenever the Set learns a secret, so a token logged in a With
// before it was known is hidden as well.
type Handler struct {
	inner slog.Handler
	set   *Set
	goas  []groupOrAttrs // since NewHandler, oldest first
	cache *atomic.Pointer[applied]
}

var _ slog.Handler = (*Handler)(nil)

// groupOrAttrs is one WithGroup (group set) or WithAttrs call.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

// applied is the inner handler with the groups and redacted attributes of
// With applied, for one version of the secrets.
type applied struct {
	version uint64
	h       slog.Handler
}

// NewHandler returns a handler that redacts the secrets of s and passes
// the records on to h.
func NewHandler(h slog.Handler, s *Set) *Handler {
	return &Handler{inner: h, set: s, cache: new(atomic.Pointer[applied])}
}

// Secrets returns the Set the handler redacts.
func (h *Handler) Secrets() *Set { return h.set }

// Enabled reports whether the inner handler handles records of level l.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs returns a handler that adds as to every record, redacted.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(groupOrAttrs{attrs: as})
}

// WithGroup returns a handler that puts the later attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(groupOrAttrs{group: name})
}

func (h *Handler) with(g groupOrAttrs) *Handler {
	return &Handler{inner: h.inner, set: h.set, goas: append(slices.Clip(h.goas), g), cache: new(atomic.Pointer[applied])}
}

// Handle redacts r and hands it to the inner handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	m := h.set.matcher()
	inner := h.applied(m)
	if len(m.pats) == 0 {
		return inner.Handle(ctx, r)
	}
	nr := slog.NewRecord(r.Time, r.Level, m.string(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(m.attr(a))
		return true
	})
	return inner.Handle(ctx, nr)
}

// applied returns the inner handler with the With calls applied, their
// attributes redacted with m.
func (h *Handler) applied(m *matcher) slog.Handler {
	if a := h.cache.Load(); a != nil && a.version == m.version {
		return a.h
	}
	inner := h.inner
	for _, g := range h.goas {
		if g.group != "" {
			inner = inner.WithGroup(g.group)
			continue
		}
		as := make([]slog.Attr, len(g.attrs))
		for i, a := range g.attrs {
			as[i] = m.attr(a)
		}
		inner = inner.WithAttrs(as)
	}
	h.cache.Store(&applied{version: m.version, h: inner})
	return inner
}

// attr returns a with its value redacted.
func (m *matcher) attr(a slog.Attr) slog.Attr {
	a.Value = m.value(a.Value)
	return a
}

// value returns v redacted: unchanged when its printed form holds no
// secret, else that form redacted.
func (m *matcher) value(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i, a := range as {
			out[i] = m.attr(a)
		}
		return slog.GroupValue(out...)
	case slog.KindAny:
		return m.anyValue(v)
	default:
		if s := v.String(); m.contains(s) {
			return slog.StringValue(m.string(s))
		}
		return v
	}
}

// anyValue checks every form the standard handlers may print a value of
// kind Any in: its text form (MarshalText, a byte slice's text, %+v, which
// is an error's text) and its JSON.
func (m *matcher) anyValue(v slog.Value) (out slog.Value) {
	x := v.Any()
	out = v
	defer func() {
		// A value that panics when printed is left to the inner handler,
		// which reports the panic in its place.
		if recover() != nil {
			out = v
		}
	}()
	var text string
	switch x := x.(type) {
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return v
		}
		text = string(b)
	case []byte:
		text = string(x)
	default:
		text = fmt.Sprintf("%+v", x)
	}
	if m.contains(text) {
		return slog.StringValue(m.string(text))
	}
	if err, ok := x.(error); ok {
		if s := err.Error(); m.contains(s) {
			return slog.StringValue(m.string(s))
		}
		return v
	}
	if b, err := json.Marshal(x); err == nil && m.contains(string(b)) {
		return slog.StringValue(m.string(text))
	}
	return v
}
