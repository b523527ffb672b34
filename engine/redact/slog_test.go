package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// secretValue is a LogValuer whose value holds a secret.
type secretValue struct{ v string }

func (s secretValue) LogValue() slog.Value { return slog.StringValue("resolved " + s.v) }

// creds is a struct printed by %+v and JSON.
type creds struct {
	Account  string
	Password string
}

// textOnly prints the secret only through MarshalText.
type textOnly struct{ v string }

func (t textOnly) MarshalText() ([]byte, error) { return []byte("text " + t.v), nil }

// TestHandlerHidesEverywhere logs a secret in every place a record can hold
// one, through the text and the JSON handler, including attributes given to
// With before the secret was known.
func TestHandlerHidesEverywhere(t *testing.T) {
	t.Parallel()
	const (
		pw   = `pw-7f3a"9c<51e2`
		tok  = "tok-0c4b8d27f1aa"
		code = "839271"
	)
	for name, newInner := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			s := New()
			log := slog.New(NewHandler(newInner(&buf), s))
			early := log.With("early", tok).WithGroup("g").With("early_in_group", "Bearer "+tok)
			s.Add(pw)
			s.AddTransient(tok, code)
			log.Info("login with "+pw,
				"plain", pw,
				"err", fmt.Errorf("upstream: refused: %w", errors.New(`{"password":"`+strings.ReplaceAll(pw, `"`, `\"`)+`"}`)),
				"struct", creds{Account: "ops", Password: pw},
				"ptr", &creds{Password: pw},
				"bytes", []byte("Authorization: "+tok),
				"number", 839271,
				"valuer", secretValue{tok},
				"text", textOnly{tok},
				slog.Group("nested", "deeper", slog.GroupValue(slog.String("tok", tok))),
				"clean", creds{Account: "ops"},
			)
			early.Warn("later", "code", code)
			out := buf.String()
			for _, leak := range []string{"pw-7f3a", "51e2", tok, code} {
				if strings.Contains(out, leak) {
					t.Errorf("%q shows in:\n%s", leak, out)
				}
			}
			if n := strings.Count(out, Mark); n < 13 {
				t.Errorf("%d marks, want 13 or more:\n%s", n, out)
			}
			// A value with no secret keeps its type: a struct stays a
			// JSON object.
			if name == "json" && !strings.Contains(out, `"clean":{"Account":"ops","Password":""}`) {
				t.Errorf("a clean struct was changed:\n%s", out)
			}
			if !strings.Contains(out, "later") || !strings.Contains(out, "early") {
				t.Errorf("records lost:\n%s", out)
			}
		})
	}
}

// TestHandlerKeepsGroups checks that With and WithGroup nest as they do
// without the handler.
func TestHandlerKeepsGroups(t *testing.T) {
	t.Parallel()
	var plain, red bytes.Buffer
	s := New()
	s.Add("never-logged")
	for _, l := range []*slog.Logger{
		slog.New(slog.NewJSONHandler(&plain, nil)),
		slog.New(NewHandler(slog.NewJSONHandler(&red, nil), s)),
	} {
		l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("").WithGroup("h").Info("m", "c", 3, slog.Group("i", "d", 4))
		l.WithGroup("empty").Info("n")
	}
	strip := func(s string) string {
		var out []string
		for _, line := range strings.Split(s, "\n") {
			if i := strings.Index(line, `"level"`); i >= 0 {
				line = line[i:]
			}
			out = append(out, line)
		}
		return strings.Join(out, "\n")
	}
	if strip(plain.String()) != strip(red.String()) {
		t.Fatalf("without:\n%s\nwith:\n%s", plain.String(), red.String())
	}
}

func TestHandlerEnabled(t *testing.T) {
	t.Parallel()
	h := NewHandler(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}), New())
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("Enabled must follow the inner handler")
	}
}

// BenchmarkHandler logs a typical record through the text handler, with and
// without the redaction in front of it.
func BenchmarkHandler(b *testing.B) {
	s := New()
	s.Add("pw-7f3a9c51e2", "adm-0c4b8d27f1")
	for i := range 20 {
		s.AddTransient(fmt.Sprintf("tok-%032d", i))
	}
	for name, h := range map[string]slog.Handler{
		"plain":    slog.NewTextHandler(io.Discard, nil),
		"redacted": NewHandler(slog.NewTextHandler(io.Discard, nil), s),
	} {
		log := slog.New(h).With("account", "shop")
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				log.Info("page synced", "messages", 19, "new", 19, "actions", 1, "err", errors.New("upstream: /syncFinder: HTTP 502"))
			}
		})
	}
}

// countingValuer counts its LogValue calls.
type countingValuer struct{ n *int }

func (c countingValuer) LogValue() slog.Value {
	*c.n++
	return slog.StringValue("counted")
}

// panickyError panics in Error with a message that holds a secret, which
// fmt prints in its place.
type panickyError struct{ msg string }

func (e panickyError) Error() string { panic(e.msg) }

// stackError shows more with %+v than its Error, as errors with stack
// traces do.
type stackError struct{ detail string }

func (e stackError) Error() string { return "failed" }

func (e stackError) Format(f fmt.State, verb rune) {
	if f.Flag('+') {
		fmt.Fprintf(f, "failed at %s", e.detail)
		return
	}
	fmt.Fprint(f, "failed")
}

// TestHandlerShortcuts covers the places where the handler spares work: a
// number formatted on the stack, an error's text got without fmt, a
// record without secrets handed on as it is, and what must still be
// checked or resolved there.
func TestHandlerShortcuts(t *testing.T) {
	t.Parallel()
	const (
		tok  = "tok-5d1e09a7c3"
		code = "839271"
	)
	var buf bytes.Buffer
	s := New()
	s.AddTransient(tok, code)
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), s))
	calls := 0
	many := []any{"valuer", countingValuer{&calls}}
	for i := range 9 {
		many = append(many, fmt.Sprint("k", i), i)
	}
	log.Info("clean", many...)
	if calls != 1 {
		t.Errorf("LogValue called %d times for one record, want once", calls)
	}
	if out := buf.String(); strings.Contains(out, Mark) || !strings.Contains(out, "valuer=counted") || !strings.Contains(out, "k8=8") {
		t.Errorf("a clean record was changed:\n%s", out)
	}
	buf.Reset()
	log.Info("m", append(many,
		"int", 839271, "uint", uint64(839271), "float", 839271.0, "negative", -839271,
		"panics", panickyError{"bad " + tok},
		"formatter", stackError{tok},
		"last", "Bearer "+tok)...)
	out := buf.String()
	if strings.Contains(out, tok) || strings.Contains(out, code) {
		t.Errorf("a secret shows in:\n%s", out)
	}
	if n := strings.Count(out, Mark); n != 7 {
		t.Errorf("%d marks, want 7:\n%s", n, out)
	}
	if !strings.Contains(out, "k8=8") {
		t.Errorf("an attribute was lost:\n%s", out)
	}
}
