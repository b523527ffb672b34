// Package redact hides the values the daemon knows to be secret wherever
// its text leaves the process. A Set holds the secrets: the configuration's
// (passwords, app secrets, the admin token), the tokens the daemon obtains
// and the codes people type. NewHandler filters every log record through
// it, Filter every response of an HTTP handler, and Set.String and
// Set.Error the texts printed elsewhere. Each occurrence of a secret becomes
// Mark.
//
// A secret is recognised as written and in the forms JSON, Go quoting and
// URLs give it once escaped, so that an upstream echoing a request in its
// error reply, escaped or not, shows nothing. A value shorter than MinLen
// bytes would hide ordinary words and numbers wherever they happen to
// contain it, and a code of digits would hide parts of longer numbers (a
// metric's value, a timestamp), so these are recognised only where they
// stand alone: not preceded or followed by an ASCII letter or digit. A
// four-digit code 2024 then still hides the year of a date written with it,
// which errs on the safe side. A value shorter than Shortest is not taken
// at all: a mistyped code "1" would otherwise hide every lone 1 of the
// status and the metrics, and no password, token or code is that short.
package redact

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Mark replaces every occurrence of a secret. It is what config.Secret
// prints too.
const Mark = "[redacted]"

// MinLen is the length from which a secret is hidden wherever it appears;
// shorter ones, and those made of digits only, are hidden only where they
// stand alone.
const MinLen = 6

// Shortest is the length under which a value is not taken as a secret.
const Shortest = 4

// MaxTransient is how many values added with AddTransient a Set keeps. A
// daemon renewing tokens for months would otherwise make every log line
// slower; the tokens that matter are the recent ones.
const MaxTransient = 256

// Set is the registry of secrets. Its methods are safe for concurrent use,
// and a nil *Set hides nothing.
type Set struct {
	mu        sync.Mutex
	permanent map[string]bool
	transient []string // oldest first, at most MaxTransient
	m         atomic.Pointer[matcher]
}

// New returns an empty Set.
func New() *Set {
	s := &Set{permanent: map[string]bool{}}
	s.m.Store(&matcher{})
	return s
}

// Add makes values secret for the life of the Set: the configuration's
// secrets. Values shorter than Shortest are ignored.
func (s *Set) Add(values ...string) {
	s.update(func() (changed bool) {
		for _, v := range values {
			if len(v) >= Shortest && !s.permanent[v] {
				s.permanent[v] = true
				changed = true
			}
		}
		return changed
	})
}

// AddTransient makes values secret that the daemon obtained or was given at
// run time: tokens, the codes people type. The Set keeps the MaxTransient
// most recently added ones. Values shorter than Shortest are ignored.
func (s *Set) AddTransient(values ...string) {
	s.update(func() (changed bool) {
		for _, v := range values {
			if len(v) < Shortest || s.permanent[v] {
				continue
			}
			if i := slices.Index(s.transient, v); i >= 0 {
				if i == len(s.transient)-1 {
					continue
				}
				s.transient = slices.Delete(s.transient, i, i+1)
			}
			s.transient = append(s.transient, v)
			if len(s.transient) > MaxTransient {
				s.transient = slices.Delete(s.transient, 0, len(s.transient)-MaxTransient)
			}
			changed = true
		}
		return changed
	})
}

// update runs add under the lock and rebuilds the matcher when it changed
// the values.
func (s *Set) update(add func() bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if add() {
		s.rebuild()
	}
}

// rebuild replaces the matcher; s.mu is held.
func (s *Set) rebuild() {
	forms := map[string]bool{}
	for v := range s.permanent {
		addForms(forms, v)
	}
	for _, v := range s.transient {
		addForms(forms, v)
	}
	m := newMatcher(s.m.Load().version+1, slices.Collect(maps.Keys(forms)))
	s.m.Store(m)
}

// addForms adds v as written, as JSON escapes it (once, and twice for an
// escaped text shown inside JSON again), and as Go quoting and URLs
// escape it.
func addForms(forms map[string]bool, v string) {
	forms[v] = true
	for _, once := range jsonEscapes(v) {
		forms[once] = true
		for _, twice := range jsonEscapes(once) {
			forms[twice] = true
		}
	}
	forms[unquote(strconv.Quote(v))] = true
	forms[url.QueryEscape(v)] = true
	forms[url.PathEscape(v)] = true
}

// jsonEscapes returns v as the inside of a JSON string, with and without
// the HTML escapes (\u003c for <) encoding/json applies by default.
func jsonEscapes(v string) []string {
	var out []string
	if b, err := json.Marshal(v); err == nil {
		out = append(out, unquote(string(b)))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		out = append(out, unquote(strings.TrimSuffix(buf.String(), "\n")))
	}
	return out
}

// unquote drops the quotes around a quoted string.
func unquote(q string) string { return q[1 : len(q)-1] }

// matcher returns the current matcher; never nil.
func (s *Set) matcher() *matcher {
	if s == nil {
		return &matcher{}
	}
	return s.m.Load()
}

// String returns text with every secret replaced by Mark.
func (s *Set) String(text string) string { return s.matcher().string(text) }

// Error returns err with its text redacted: an error whose Error() is the
// redacted text and which unwraps to err, so that errors.Is and errors.As
// still see the chain. It returns err itself when its text holds no secret.
func (s *Set) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := s.String(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError is an error whose text was redacted.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// matcher is an immutable snapshot of the secrets' forms.
type matcher struct {
	version uint64
	pats    []pattern // longest first
	maxLen  int
	// A text is scanned once, comparing forms only where their first
	// four bytes stand, instead of being searched once per form: the
	// logger checks every attribute against up to hundreds of forms.
	// bigrams holds the forms' first two bytes and grams their first
	// four, hashed: the first is the cheapest test for every byte, the
	// second rules out the words that begin like the tokens ("to", "ey")
	// without a map lookup. cands lists the forms by their first four
	// bytes, as indices into pats in the same order. All are nil when
	// there are no forms.
	bigrams, grams *bits
	cands          map[uint32][]int32
}

// Forms are at least four bytes long, which the filter needs: a form is
// never shorter than its value, since escaping only replaces a byte or a
// rune by itself or by a longer sequence.
const _ = uint(Shortest - 4)

// pattern is one form of a secret.
type pattern struct {
	s     string
	alone bool // matches only where no letter or digit touches it
}

// newMatcher returns the matcher of forms, each at least Shortest bytes.
func newMatcher(version uint64, forms []string) *matcher {
	m := &matcher{version: version}
	for _, f := range forms {
		m.pats = append(m.pats, pattern{s: f, alone: len(f) < MinLen || allDigits(f)})
		m.maxLen = max(m.maxLen, len(f))
	}
	// Longest first: at one position the longest match wins, so a secret
	// that contains another is hidden whole.
	slices.SortFunc(m.pats, func(a, b pattern) int {
		if c := len(b.s) - len(a.s); c != 0 {
			return c
		}
		return strings.Compare(a.s, b.s)
	})
	if len(m.pats) == 0 {
		return m
	}
	m.bigrams, m.grams, m.cands = new(bits), new(bits), map[uint32][]int32{}
	for j, p := range m.pats {
		g := gram(p.s)
		m.bigrams.add(bigram(p.s[0], p.s[1]))
		m.grams.add(hashGram(g))
		m.cands[g] = append(m.cands[g], int32(j))
	}
	return m
}

// bits is a set of 16-bit numbers, 8 KiB.
type bits [1 << 16 / 64]uint64

func (b *bits) add(x uint16)      { b[x/64] |= 1 << (x % 64) }
func (b *bits) has(x uint16) bool { return b[x/64]&(1<<(x%64)) != 0 }

func bigram(b0, b1 byte) uint16 { return uint16(b0)<<8 | uint16(b1) }

// gram returns the first four bytes of s.
func gram[T string | []byte](s T) uint32 {
	s = s[:4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// hashGram spreads four bytes over 16 bits (Fibonacci hashing), so that
// forms differing in any of them rarely share a bit.
func hashGram(g uint32) uint16 { return uint16(g * 0x9e3779b1 >> 16) }

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// string redacts a whole text.
func (m *matcher) string(text string) string {
	if !m.contains(text) {
		return text
	}
	out, _ := m.redact(nil, []byte(text), 0, true)
	return string(out)
}

// contains reports whether any form occurs in text, a cheap test before
// redact, which also checks where short ones stand.
func (m *matcher) contains(text string) bool {
	bigrams, grams := m.bigrams, m.grams
	if bigrams == nil {
		return false
	}
	for i := 0; i+3 < len(text); i++ {
		if !bigrams.has(bigram(text[i], text[i+1])) {
			continue
		}
		g := gram(text[i:])
		if !grams.has(hashGram(g)) {
			continue
		}
		for _, j := range m.cands[g] {
			if strings.HasPrefix(text[i:], m.pats[j].s) {
				return true
			}
		}
	}
	return false
}

// redact appends p to dst with every secret replaced by Mark and returns
// how many bytes of p it consumed. prev is the byte before p (0 at the
// start). Unless final, it stops where a secret could begin that p does not
// hold whole yet, together with the byte after it: the caller keeps the
// rest and hands it in again with more. The result is the same however a
// text is cut into calls.
func (m *matcher) redact(dst, p []byte, prev byte, final bool) ([]byte, int) {
	if len(m.pats) == 0 {
		return append(dst, p...), len(p)
	}
	// Positions before limit are decided: every form, and the byte after
	// it, fits in p.
	limit := len(p)
	if !final {
		limit = max(len(p)-m.maxLen, 0)
	}
	i := 0
	for i < limit {
		at, n := m.next(p, i, limit, prev, final)
		if at < 0 {
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

// next returns the first position in p from from to before limit where a
// form occurs, standing alone when it must, and the length of the longest
// such form there; -1 when there is none. The earliest match is replaced
// first and the longest at one position, so that a secret containing
// another is hidden whole.
func (m *matcher) next(p []byte, from, limit int, prev byte, final bool) (at, n int) {
	bigrams, grams := m.bigrams, m.grams
	for at = from; at < limit && at+3 < len(p); at++ {
		if !bigrams.has(bigram(p[at], p[at+1])) {
			continue
		}
		g := gram(p[at:])
		if !grams.has(hashGram(g)) {
			continue
		}
		for _, j := range m.cands[g] {
			pat := m.pats[j]
			end := at + len(pat.s)
			if end <= len(p) && string(p[at:end]) == pat.s &&
				(!pat.alone || alone(p, at, end, prev, final)) {
				return at, len(pat.s)
			}
		}
	}
	return -1, 0
}

// alone reports whether p[start:end] has no letter or digit on either side.
// The end of a text that is not final is not a side: the match waits.
func alone(p []byte, start, end int, prev byte, final bool) bool {
	before := prev
	if start > 0 {
		before = p[start-1]
	}
	if isWordByte(before) {
		return false
	}
	if end < len(p) {
		return !isWordByte(p[end])
	}
	return final
}

func isWordByte(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
