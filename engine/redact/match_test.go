package redact

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// naiveContains is the plain search contains replaced, one pass over the
// text per form; the oracle of TestMatcherAgreesWithNaive.
func naiveContains(m *matcher, text string) bool {
	for _, p := range m.pats {
		if strings.Contains(text, p.s) {
			return true
		}
	}
	return false
}

// naiveRedact is the plain redact the bigram filter replaced: for every
// form, its next occurrence; the earliest wins, the longest at one place.
func naiveRedact(m *matcher, dst, p []byte, prev byte, final bool) ([]byte, int) {
	if len(m.pats) == 0 {
		return append(dst, p...), len(p)
	}
	limit := len(p)
	if !final {
		limit = max(len(p)-m.maxLen, 0)
	}
	next := make([]int, len(m.pats))
	for j := range next {
		next[j] = -2
	}
	i := 0
	for i < limit {
		at, n := -1, 0
		for j, pat := range m.pats {
			if next[j] == -1 {
				continue
			}
			if next[j] < i {
				next[j] = naiveFind(p, pat, i, prev, final)
				if next[j] == -1 {
					continue
				}
			}
			if at == -1 || next[j] < at {
				at, n = next[j], len(pat.s)
			}
		}
		if at == -1 || at >= limit {
			break
		}
		dst = append(dst, p[i:at]...)
		dst = append(dst, Mark...)
		i = at + n
	}
	if i >= limit {
		return dst, i
	}
	return append(dst, p[i:limit]...), limit
}

func naiveFind(p []byte, pat pattern, from int, prev byte, final bool) int {
	for from <= len(p) {
		k := strings.Index(string(p[from:]), pat.s)
		if k < 0 {
			return -1
		}
		at := from + k
		if !pat.alone || alone(p, at, at+len(pat.s), prev, final) {
			return at
		}
		from = at + 1
	}
	return -1
}

// randomSecret returns a value of 1 to 12 bytes from one of several
// alphabets, or a piece of an earlier secret grown or cut, so that secrets
// overlap, contain each other and share their first bytes.
func randomSecret(r *rand.Rand, earlier []string) string {
	alphabets := []string{
		"0123456789",
		"abcdefghij-ABC",
		"ab1-_.",
		`a"<&>\ %/?=+`,
		"\x00\t\n\x7f\xff\xfe",
	}
	runes := []string{"é", "ü", "日本", "\u2028", "\xc3", "\xa9"}
	if len(earlier) > 0 && r.IntN(3) == 0 {
		e := earlier[r.IntN(len(earlier))]
		switch r.IntN(4) {
		case 0:
			return e[:r.IntN(len(e)+1)]
		case 1:
			return e[r.IntN(len(e)+1):]
		case 2:
			return e + randomSecret(r, nil)
		default:
			return randomSecret(r, nil) + e
		}
	}
	var b strings.Builder
	abc := alphabets[r.IntN(len(alphabets))]
	for range 1 + r.IntN(12) {
		if r.IntN(8) == 0 {
			b.WriteString(runes[r.IntN(len(runes))])
			continue
		}
		b.WriteByte(abc[r.IntN(len(abc))])
	}
	return b.String()
}

// TestMatcherAgreesWithNaive checks, over random secret sets and random
// texts made of their forms, pieces of them and other bytes, that the
// bigram-filtered contains and redact give exactly what searching for
// every form one after the other gives, wherever a text is cut and
// whatever byte came before it.
func TestMatcherAgreesWithNaive(t *testing.T) {
	t.Parallel()
	fillers := []string{" ", "a", "1", "-", "\"", "\\", "%", "é", "\xff", "\x00", "00", "ab"}
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 11))
		var secrets []string
		for range r.IntN(12) {
			secrets = append(secrets, randomSecret(r, secrets))
		}
		s := New()
		k := r.IntN(len(secrets) + 1)
		s.Add(secrets[:k]...)
		s.AddTransient(secrets[k:]...)
		m := s.matcher()
		for _, p := range m.pats {
			if len(p.s) < Shortest {
				t.Fatalf("seed %d: form %q is shorter than Shortest", seed, p.s)
			}
		}
		for range 20 {
			var b strings.Builder
			for range r.IntN(30) {
				switch x := r.IntN(10); {
				case x < 3 && len(m.pats) > 0:
					b.WriteString(m.pats[r.IntN(len(m.pats))].s)
				case x < 6 && len(m.pats) > 0:
					f := m.pats[r.IntN(len(m.pats))].s
					i := r.IntN(len(f))
					b.WriteString(f[i : i+1+r.IntN(len(f)-i)])
				case x < 8 && len(secrets) > 0:
					b.WriteString(secrets[r.IntN(len(secrets))])
				default:
					b.WriteString(fillers[r.IntN(len(fillers))])
				}
			}
			text := b.String()
			if got, want := m.contains(text), naiveContains(m, text); got != want {
				t.Fatalf("seed %d, secrets %q: contains(%q) = %v, want %v", seed, secrets, text, got, want)
			}
			prev := fillers[r.IntN(len(fillers))][0]
			for _, final := range []bool{true, false} {
				got, n := m.redact([]byte("x"), []byte(text), prev, final)
				want, wantN := naiveRedact(m, []byte("x"), []byte(text), prev, final)
				if string(got) != string(want) || n != wantN {
					t.Fatalf("seed %d, secrets %q: redact(%q, %q, %v) = %q, %d, want %q, %d",
						seed, secrets, text, prev, final, got, n, want, wantN)
				}
			}
		}
	}
}
