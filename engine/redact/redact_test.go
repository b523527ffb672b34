package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add("pw-7f3a9c51e2", `q"<&>x-secret`, "abcd", "2024", "", "1", "ok", "abc")
	s.AddTransient("tok-0123456789abcdef", "839271")
	tests := map[string]struct{ in, want string }{
		"as written":         {"password=pw-7f3a9c51e2 ok", "password=[redacted] ok"},
		"twice":              {"pw-7f3a9c51e2pw-7f3a9c51e2", "[redacted][redacted]"},
		"JSON escaped":       {`{"p":"q\"\u003c\u0026\u003ex-secret"}`, `{"p":"[redacted]"}`},
		"JSON without HTML":  {`{"p":"q\"<&>x-secret"}`, `{"p":"[redacted]"}`},
		"JSON twice":         {`"{\"p\":\"q\\\"\\u003c\\u0026\\u003ex-secret\"}"`, `"{\"p\":\"[redacted]\"}"`},
		"query escaped":      {"?p=q%22%3C%26%3Ex-secret&x=1", "?p=[redacted]&x=1"},
		"transient":          {"Authorization: tok-0123456789abcdef;", "Authorization: [redacted];"},
		"short alone":        {"pw abcd.", "pw [redacted]."},
		"short in a word":    {"abcde xabcd abcd1", "abcde xabcd abcd1"},
		"short at the ends":  {"abcd", "[redacted]"},
		"digits alone":       {`"validateNo":"839271"`, `"validateNo":"[redacted]"`},
		"digits in numbers":  {"value 2.48392710e+07 and 1839271", "value 2.48392710e+07 and 1839271"},
		"a year errs safe":   {"2024-03-27", "[redacted]-03-27"},
		"nothing":            {"nothing to hide", "nothing to hide"},
		"empty is no secret": {"", ""},
		"too short to hide":  {`state 1 ok abc {"x":1}`, `state 1 ok abc {"x":1}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := s.String(tc.in); got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestLongestWins: a secret containing another is hidden whole.
func TestLongestWins(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add("secret-one", "secret-one-two")
	if got := s.String("x secret-one-two y secret-one"); got != "x [redacted] y [redacted]" {
		t.Fatal(got)
	}
}

func TestNilSetHidesNothing(t *testing.T) {
	t.Parallel()
	var s *Set
	s.Add("x-secret")
	s.AddTransient("y-secret")
	if got := s.String("x-secret"); got != "x-secret" {
		t.Fatal(got)
	}
}

// TestTransientBound adds more run-time values than the Set keeps: the
// oldest are forgotten, the newest and the permanent ones are not.
func TestTransientBound(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add("config-secret")
	for i := range MaxTransient + 10 {
		s.AddTransient(fmt.Sprintf("token-%06d", i))
	}
	s.AddTransient("config-secret") // already permanent: takes no slot
	for text, want := range map[string]string{
		"token-000000": "token-000000",
		"token-000009": "token-000009",
		"token-000010": Mark,
		fmt.Sprintf("token-%06d", MaxTransient+9): Mark,
		"config-secret": Mark,
	} {
		if got := s.String(text); got != want {
			t.Errorf("String(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add("pw-7f3a9c51e2")
	base := &fs.PathError{Op: "open", Path: "pw-7f3a9c51e2", Err: fs.ErrNotExist}
	err := s.Error(fmt.Errorf("login: %w", base))
	var pe *fs.PathError
	if err.Error() != "login: open [redacted]: file does not exist" || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("Error = %q; Is %v", err, errors.Is(err, fs.ErrNotExist))
	}
	clean := errors.New("nothing")
	if s.Error(clean) != clean || s.Error(nil) != nil {
		t.Fatal("a clean error must come back as it is")
	}
}

// TestChunksGiveTheWholeResult cuts texts full of secrets, escaped and
// not, long and short, at random places and checks that redacting the
// pieces as they come gives exactly what redacting the whole text gives,
// with no secret left.
func TestChunksGiveTheWholeResult(t *testing.T) {
	t.Parallel()
	secrets := []string{"pw-7f3a9c51e2", "pw-7f3a", `q"<&>x-secret`, "abcd", "839271", "tok-0123456789abcdef0123"}
	s := New()
	s.Add(secrets[:3]...)
	s.AddTransient(secrets[3:]...)
	m := s.matcher()
	pieces := []string{"pw-7f3a9c51e2", "pw-7f3a", `q\"\u003c\u0026\u003ex-secret`, "abcd", "839271", "tok-0123456789abcdef0123",
		" ", "x", "1", "pw-", "-", "\"", "abc", "83927", "tok-01234", "é"}
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 7))
		var b strings.Builder
		for range r.IntN(40) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		text := b.String()
		whole, _ := m.redact(nil, []byte(text), 0, true)
		var (
			got     []byte
			pending []byte
			prev    byte
		)
		rest := []byte(text)
		for len(rest) > 0 {
			k := 1 + r.IntN(min(len(rest), 9))
			pending = append(pending, rest[:k]...)
			rest = rest[k:]
			var n int
			got, n = m.redact(got, pending, prev, false)
			if n > 0 {
				prev = pending[n-1]
			}
			pending = pending[n:]
		}
		got, _ = m.redact(got, pending, prev, true)
		if string(got) != string(whole) {
			t.Fatalf("seed %d: %q\n in pieces: %q\n whole:     %q", seed, text, got, whole)
		}
		for _, sec := range []string{"pw-7f3a9c51e2", `x-secret`, "tok-0123456789abcdef0123"} {
			if strings.Contains(string(whole), sec) {
				t.Fatalf("seed %d: %q shows in %q", seed, sec, whole)
			}
		}
	}
}

func BenchmarkStringClean(b *testing.B) {
	s := New()
	for i := range 20 {
		s.AddTransient(fmt.Sprintf("token-%032d", i))
	}
	text := strings.Repeat("page synced account=shop messages=19 new=19 ", 4)
	for b.Loop() {
		s.String(text)
	}
}

// BenchmarkRedactBody redacts a response body of 75 KB without secrets
// but full of words beginning as the tokens do ("to"), with few and with
// as many tokens as a Set keeps.
func BenchmarkRedactBody(b *testing.B) {
	body := []byte(strings.Repeat(`{"id":"a7f3","subject":"Your parcel is on its way to the post office","from":"team@shop.example","date":"2024-03-27T10:00:00Z","tags":["today","top"]},`, 500))
	for _, n := range []int{20, MaxTransient} {
		s := New()
		s.Add("pw-7f3a9c51e2", "adm-0c4b8d27f1")
		for i := range n {
			s.AddTransient(fmt.Sprintf("tok-%032d", i))
		}
		m := s.matcher()
		out := make([]byte, 0, len(body))
		b.Run(fmt.Sprint(n, "tokens"), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				m.redact(out[:0], body, 0, true)
			}
		})
	}
}
