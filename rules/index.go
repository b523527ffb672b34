package rules

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
)

// need is what a condition requires of a message: it can only be true for a
// message that satisfies at least one of the alternatives. A nil *need
// requires nothing the index can use.
type need struct {
	// eq: msg.Text equals one of these.
	eq []string
	// contains: msg.Text contains one of these (none is empty).
	contains []string
	// types: msg.Type equals one of these.
	types []string
}

// weight estimates how many messages satisfy the need; lower is more
// selective. Types are coarse (most messages are text), short keywords
// match often.
func (n *need) weight() int {
	w := len(n.eq)
	for _, c := range n.contains {
		if len(c) < 3 {
			w += 8
		} else {
			w += 2
		}
	}
	return w + 50*len(n.types)
}

func (n *need) union(o *need) *need {
	return &need{
		eq:       append(slices.Clip(n.eq), o.eq...),
		contains: append(slices.Clip(n.contains), o.contains...),
		types:    append(slices.Clip(n.types), o.types...),
	}
}

// maxOptions bounds the alternatives analyze keeps for one condition.
const maxOptions = 8

// analyze finds the needs of a type-checked condition: each of the returned
// options is implied by the whole condition, so a message that satisfies
// none of the alternatives of any one option makes the condition false. The
// index later picks the option whose keys the fewest rules share. analyze
// only looks through && and ||, never under a negation or a call other than
// containsAny.
func analyze(node ast.Node) []*need {
	switch n := node.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			out := append(analyze(n.Left), analyze(n.Right)...)
			return out[:min(len(out), maxOptions)]
		case "||", "or":
			l, r := best(analyze(n.Left)), best(analyze(n.Right))
			if l == nil || r == nil {
				return nil
			}
			return []*need{l.union(r)}
		case "==":
			if f, lit, ok := fieldAndLiteral(n.Left, n.Right); ok {
				return one(fieldNeed(f, lit))
			}
			if f, lit, ok := fieldAndLiteral(n.Right, n.Left); ok {
				return one(fieldNeed(f, lit))
			}
		case "contains", "startsWith", "endsWith":
			// A prefix or suffix is also contained; the condition itself
			// is still evaluated for every candidate.
			if f, lit, ok := fieldAndLiteral(n.Left, n.Right); ok && f == "Text" && lit != "" {
				return one(&need{contains: []string{lit}})
			}
		case "matches":
			if f, lit, ok := fieldAndLiteral(n.Left, n.Right); ok && f == "Text" {
				var out []*need
				for _, lits := range regexLiterals(lit) {
					out = append(out, &need{contains: lits})
				}
				return out
			}
		case "in":
			f, ok := msgField(n.Left)
			arr, isArr := n.Right.(*ast.ArrayNode)
			if !ok || !isArr {
				return nil
			}
			out := &need{}
			for _, e := range arr.Nodes {
				s, ok := e.(*ast.StringNode)
				if !ok {
					return nil
				}
				out = out.union(fieldNeed(f, s.Value))
			}
			return one(out)
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "containsAny" || len(n.Arguments) < 2 {
			return nil
		}
		if f, ok := msgField(n.Arguments[0]); !ok || f != "Text" {
			return nil
		}
		out := &need{}
		for _, a := range n.Arguments[1:] {
			s, ok := a.(*ast.StringNode)
			if !ok || s.Value == "" {
				return nil
			}
			out.contains = append(out.contains, s.Value)
		}
		return one(out)
	}
	return nil
}

func one(n *need) []*need {
	if n == nil {
		return nil
	}
	return []*need{n}
}

// best picks the most selective option by its own weight.
func best(opts []*need) *need {
	var b *need
	for _, o := range opts {
		if b == nil || o.weight() < b.weight() {
			b = o
		}
	}
	return b
}

func fieldNeed(f, lit string) *need {
	switch f {
	case "Text":
		return &need{eq: []string{lit}}
	case "Type":
		return &need{types: []string{lit}}
	}
	return nil
}

// fieldAndLiteral matches msg.<Field> against a string literal.
func fieldAndLiteral(a, b ast.Node) (string, string, bool) {
	f, ok := msgField(a)
	if !ok {
		return "", "", false
	}
	s, ok := b.(*ast.StringNode)
	if !ok {
		return "", "", false
	}
	return f, s.Value, true
}

// msgField recognises msg.Text and msg.Type.
func msgField(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "msg" {
		return "", false
	}
	p, ok := m.Property.(*ast.StringNode)
	if !ok || (p.Value != "Text" && p.Value != "Type") {
		return "", false
	}
	return p.Value, true
}

// regexLiterals returns options of strings: every match of the pattern
// contains one of the strings of each option.
func regexLiterals(pattern string) [][]string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	return required(re.Simplify())
}

func required(re *syntax.Regexp) [][]string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		return literalRuns(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var out [][]string
		for _, s := range re.Sub {
			out = append(out, required(s)...)
		}
		return out[:min(len(out), maxOptions)]
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			opts := required(s)
			if opts == nil {
				return nil
			}
			// Any option of the branch will do; take the longest.
			bestOpt := opts[0]
			for _, o := range opts[1:] {
				if shortest(o) > shortest(bestOpt) {
					bestOpt = o
				}
			}
			out = append(out, bestOpt...)
		}
		return [][]string{out}
	}
	return nil
}

// literalRuns returns, as options, the runs of a literal's runes that a
// match holds as the very bytes of their UTF-8. A regular expression reads
// each byte of a text that is not UTF-8 as U+FFFD, so a U+FFFD of the
// pattern may stand for a byte that is not its encoding and only splits the
// literal: `价\uFFFD格` matches "价\xff格", which contains "价" and "格" but
// not "价\uFFFD格". A rune UTF-8 cannot encode splits it too, having no
// bytes of its own to look for.
func literalRuns(runes []rune) [][]string {
	var out [][]string
	start := 0
	for i := 0; i <= len(runes); i++ {
		if i < len(runes) && runes[i] != utf8.RuneError && utf8.ValidRune(runes[i]) {
			continue
		}
		if i > start {
			out = append(out, []string{string(runes[start:i])})
		}
		start = i + 1
	}
	return out
}

func shortest(ss []string) int {
	n := len(ss[0])
	for _, s := range ss {
		n = min(n, len(s))
	}
	return n
}

// index finds the message rules a message could match. Rules are numbered in
// evaluation order; every list is sorted.
type index struct {
	eq     map[string][]int32
	types  map[string][]int32
	ac     *automaton
	always []int32
}

func buildIndex(rules []*Rule) *index {
	ix := &index{eq: map[string][]int32{}, types: map[string][]int32{}}
	// Count how many rules could use each key, to give each rule the
	// option that leads the fewest messages to it.
	shared := map[string]int{}
	for _, r := range rules {
		if r.cond == nil {
			continue
		}
		for _, o := range r.cond.needs {
			for _, k := range o.keys() {
				shared[k]++
			}
		}
	}
	var b acBuilder
	for i, r := range rules {
		id := int32(i)
		var n *need
		if r.cond != nil {
			bestCost := 0
			for _, o := range r.cond.needs {
				cost := o.weight()
				for _, k := range o.keys() {
					cost += 4 * shared[k]
				}
				if n == nil || cost < bestCost {
					n, bestCost = o, cost
				}
			}
		}
		if n == nil {
			ix.always = append(ix.always, id)
			continue
		}
		for _, s := range n.eq {
			ix.eq[s] = appendOnce(ix.eq[s], id)
		}
		for _, s := range n.types {
			ix.types[s] = appendOnce(ix.types[s], id)
		}
		for _, s := range n.contains {
			b.add(s, id)
		}
	}
	ix.ac = b.build()
	return ix
}

// keys names each alternative of the need, for counting shared ones.
func (n *need) keys() []string {
	var ks []string
	for _, s := range n.eq {
		ks = append(ks, "=\x00"+s)
	}
	for _, s := range n.contains {
		ks = append(ks, "~\x00"+s)
	}
	for _, s := range n.types {
		ks = append(ks, "t\x00"+s)
	}
	return ks
}

func appendOnce(l []int32, id int32) []int32 {
	if len(l) > 0 && l[len(l)-1] == id {
		return l
	}
	return append(l, id)
}

// candidates appends to buf, sorted and without repeats, the indexed rules
// msg could match. The caller merges in ix.always.
func (ix *index) candidates(buf []int32, text, typ string) []int32 {
	buf = append(buf, ix.eq[text]...)
	buf = append(buf, ix.types[typ]...)
	buf = ix.ac.appendMatches(buf, text)
	if len(buf) > 1 {
		slices.Sort(buf)
		buf = slices.Compact(buf)
	}
	return buf
}

// automaton is an Aho-Corasick automaton over the keywords of `contains`
// constraints: one pass over a text finds every keyword in it, whatever the
// number of keywords.
type automaton struct {
	root  [256]int32 // transitions from the root, dense
	nodes []acNode
	edges []acEdge // each node's edges, sorted by byte
	out   []int32  // rule ids, by node: out[nodes[i].outStart:nodes[i].outEnd]
}

type acNode struct {
	edgeStart, edgeEnd int32
	fail               int32
	// dict is the nearest node on the fail chain with output, or -1.
	dict           int32
	outStart, outE int32
}

type acEdge struct {
	b    byte
	next int32
}

type acBuilder struct {
	children []map[byte]int32
	outs     [][]int32
}

func (b *acBuilder) add(s string, id int32) {
	if b.children == nil {
		b.children = []map[byte]int32{{}}
		b.outs = [][]int32{nil}
	}
	n := int32(0)
	for i := 0; i < len(s); i++ {
		next, ok := b.children[n][s[i]]
		if !ok {
			next = int32(len(b.children))
			b.children = append(b.children, map[byte]int32{})
			b.outs = append(b.outs, nil)
			b.children[n][s[i]] = next
		}
		n = next
	}
	b.outs[n] = appendOnce(b.outs[n], id)
}

func (b *acBuilder) build() *automaton {
	if b.children == nil {
		b.add("", -1) // an empty automaton: just the root
		b.outs[0] = nil
	}
	a := &automaton{nodes: make([]acNode, len(b.children))}
	for i, ch := range b.children {
		n := &a.nodes[i]
		n.edgeStart = int32(len(a.edges))
		keys := make([]byte, 0, len(ch))
		for k := range ch {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			a.edges = append(a.edges, acEdge{b: k, next: ch[k]})
		}
		n.edgeEnd = int32(len(a.edges))
		n.outStart = int32(len(a.out))
		a.out = append(a.out, b.outs[i]...)
		n.outE = int32(len(a.out))
		n.dict = -1
	}
	// Breadth-first: a node's fail link is the longest proper suffix of its
	// path that is also a path in the trie.
	queue := make([]int32, 0, len(a.nodes))
	for c := 0; c < 256; c++ {
		a.root[c] = 0
	}
	for _, e := range a.edges[a.nodes[0].edgeStart:a.nodes[0].edgeEnd] {
		a.root[e.b] = e.next
		a.nodes[e.next].fail = 0
		queue = append(queue, e.next)
	}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, e := range a.edges[a.nodes[u].edgeStart:a.nodes[u].edgeEnd] {
			v := e.next
			f := a.step(a.nodes[u].fail, e.b)
			a.nodes[v].fail = f
			if a.nodes[f].outE > a.nodes[f].outStart {
				a.nodes[v].dict = f
			} else {
				a.nodes[v].dict = a.nodes[f].dict
			}
			queue = append(queue, v)
		}
	}
	return a
}

// child returns n's edge on c, or -1.
func (a *automaton) child(n int32, c byte) int32 {
	if n == 0 {
		if next := a.root[c]; next != 0 {
			return next
		}
		return -1
	}
	es := a.edges[a.nodes[n].edgeStart:a.nodes[n].edgeEnd]
	if len(es) <= 8 {
		for _, e := range es {
			if e.b == c {
				return e.next
			}
		}
		return -1
	}
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].b < c {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(es) && es[lo].b == c {
		return es[lo].next
	}
	return -1
}

// step follows c from n, falling back along fail links.
func (a *automaton) step(n int32, c byte) int32 {
	for {
		if next := a.child(n, c); next >= 0 {
			return next
		}
		if n == 0 {
			return 0
		}
		n = a.nodes[n].fail
	}
}

// appendMatches appends the rule ids of every keyword found in text.
func (a *automaton) appendMatches(buf []int32, text string) []int32 {
	if len(a.nodes) <= 1 {
		return buf
	}
	n := int32(0)
	for i := 0; i < len(text); i++ {
		n = a.step(n, text[i])
		for o := n; o > 0; o = a.nodes[o].dict {
			nd := &a.nodes[o]
			buf = append(buf, a.out[nd.outStart:nd.outE]...)
		}
	}
	return buf
}

// String describes a need for explanations, as the alternatives joined by
// "or".
func (n *need) String() string {
	var parts []string
	for _, s := range n.eq {
		parts = append(parts, "msg.Text == "+quote(s))
	}
	for _, s := range n.contains {
		parts = append(parts, "msg.Text contains "+quote(s))
	}
	for _, s := range n.types {
		parts = append(parts, "msg.Type == "+quote(s))
	}
	if len(parts) == 0 {
		return "nothing (the condition can never be true)"
	}
	return strings.Join(parts, " or ")
}
