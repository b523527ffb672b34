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
