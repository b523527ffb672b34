package redact

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
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

// Handle redacts r and hands it to the inner handler: r itself when it
// holds no secret, which spares copying it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	m := h.set.matcher()
	inner := h.applied(m)
	if len(m.pats) == 0 {
		return inner.Handle(ctx, r)
	}
	changed := m.contains(r.Message)
	// The redacted attributes are kept while looking, so that a record
	// that must be copied does not have them redacted twice; a record's
	// attributes mostly fit in buf, on the stack.
	var buf [8]slog.Attr
	as := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		a, ch := m.attr(a)
		as = append(as, a)
		changed = changed || ch
		return true
	})
	if !changed {
		return inner.Handle(ctx, r)
	}
	nr := slog.NewRecord(r.Time, r.Level, m.string(r.Message), r.PC)
	nr.AddAttrs(as...)
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
			as[i], _ = m.attr(a)
		}
		inner = inner.WithAttrs(as)
	}
	h.cache.Store(&applied{version: m.version, h: inner})
	return inner
}

// attr returns a with its value redacted, and whether that changed it.
func (m *matcher) attr(a slog.Attr) (slog.Attr, bool) {
	var changed bool
	a.Value, changed = m.value(a.Value)
	return a, changed
}

// value returns v redacted: unchanged when its printed form holds no
// secret, else that form redacted. It reports whether it returns anything
// but v: a LogValuer counts as changed, since the value it resolved to is
// what was checked and must be handed on, not resolved again.
func (m *matcher) value(v slog.Value) (slog.Value, bool) {
	resolved := v.Kind() == slog.KindLogValuer
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		as := v.Group()
		var out []slog.Attr // made at the first change
		for i, a := range as {
			ra, ch := m.attr(a)
			if ch && out == nil {
				out = slices.Clone(as)
			}
			if out != nil {
				out[i] = ra
			}
		}
		if out == nil {
			return v, resolved
		}
		return slog.GroupValue(out...), true
	case slog.KindAny:
		out, ch := m.anyValue(v)
		return out, ch || resolved
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool:
		// Formatted as v.String() does, but on the stack: a count or a
		// timestamp in every record then costs no allocation.
		var buf [32]byte
		var b []byte
		switch v.Kind() {
		case slog.KindInt64:
			b = strconv.AppendInt(buf[:0], v.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(buf[:0], v.Uint64(), 10)
		case slog.KindFloat64:
			b = strconv.AppendFloat(buf[:0], v.Float64(), 'g', -1, 64)
		default:
			b = strconv.AppendBool(buf[:0], v.Bool())
		}
		if m.contains(string(b)) {
			return slog.StringValue(m.string(string(b))), true
		}
		return v, resolved
	default:
		if s := v.String(); m.contains(s) {
			return slog.StringValue(m.string(s)), true
		}
		return v, resolved
	}
}

// anyValue checks every form the standard handlers may print a value of
// kind Any in: its text form (MarshalText, a byte slice's text, %+v, which
// is an error's text) and its JSON. It reports whether it returns anything
// but v.
func (m *matcher) anyValue(v slog.Value) (out slog.Value, changed bool) {
	x := v.Any()
	defer func() {
		// A value that panics when printed is left to the inner handler,
		// which reports the panic in its place.
		if recover() != nil {
			out, changed = v, false
		}
	}()
	var text string
	checkedError := false
	switch x := x.(type) {
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return v, false
		}
		text = string(b)
	case []byte:
		text = string(x)
	case error:
		// fmt prints an error that is no Formatter as its Error(), so
		// that is its %+v, got without fmt; fmt is still asked when
		// Error panics, since it prints the panic, which the check
		// must see.
		if _, ok := x.(fmt.Formatter); !ok {
			text, checkedError = errorText(x)
		}
		if !checkedError {
			text = fmt.Sprintf("%+v", x)
		}
	default:
		text = fmt.Sprintf("%+v", x)
	}
	if m.contains(text) {
		return slog.StringValue(m.string(text)), true
	}
	if err, ok := x.(error); ok {
		if checkedError {
			return v, false
		}
		if s := err.Error(); m.contains(s) {
			return slog.StringValue(m.string(s)), true
		}
		return v, false
	}
	if b, err := json.Marshal(x); err == nil && m.contains(string(b)) {
		return slog.StringValue(m.string(text)), true
	}
	return v, false
}

// errorText returns err.Error(), and false if it panics.
func errorText(err error) (text string, ok bool) {
	defer func() {
		if recover() != nil {
			text, ok = "", false
		}
	}()
	return err.Error(), true
}
