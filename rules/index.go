package rules

import (
	"fmt"
	"math"
	"math/bits"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// dim is what the index looks up: a string field of the message, its
// account or its event by equality (the gfield values), a keyword of
// msg.Text, or a range of a number computed once per message (len(msg.Text),
// hour(), minute(), weekday(), the time of day of between()).
type dim = gfield

const (
	dimContains = numFields
	dimSlot     = numFields + 1 // dimSlot + islot
	numDims     = dimSlot + dim(numSlots)
)

// slotDim is the dim of a slot.
func slotDim(s islot) dim { return dimSlot + dim(s) }

// dimSet is a set of dims, for an index that looks up only some.
type dimSet uint16

func (d dimSet) has(x dim) bool { return d&(1<<x) != 0 }

const (
	allDims dimSet = 1<<numDims - 1
	// legacyDims are the dims of the index before it read anything but
	// msg.Text and msg.Type; benchmarks compare against it.
	legacyDims dimSet = 1<<fText | 1<<fType | 1<<dimContains
)

// alt is one alternative of a need: dim equals s; for dimContains,
// msg.Text contains s; for a slot's dim, the slot is in [lo, hi].
type alt struct {
	dim    dim
	s      string
	lo, hi int
}

// need is what a condition requires of a message: it can only be true for a
// message that satisfies at least one of the alternatives. A nil *need
// requires nothing the index can use; one without alternatives can never be
// satisfied.
type need struct {
	alts []alt
}

// weight estimates how many messages satisfy the need; lower is more
// selective. A type, a sysmsg type or an event type is shared by many
// messages, most messages are not the account's own, short keywords match
// often.
func (n *need) weight() int {
	w := 0
	for _, a := range n.alts {
		switch a.dim {
		case dimContains:
			if len(a.s) < 3 {
				w += 8
			} else {
				w += 2
			}
		case fType:
			w += 50
		case fFromSelf:
			w += 80
		case fSysType, fEventType:
			w += 10
		case fText, fFrom, fTo, fSession, fAccount:
			w++
		default:
			w += a.slotWeight()
		}
	}
	return w
}

func (n *need) union(o *need) *need {
	return &need{alts: append(slices.Clip(n.alts), o.alts...)}
}

// only reports whether every alternative looks up d.
func (n *need) only(d dim) bool {
	for _, a := range n.alts {
		if a.dim != d {
			return false
		}
	}
	return true
}

// maxOptions bounds the alternatives needsOf keeps for one condition.
const maxOptions = 8

// needsOf finds what a condition's guard requires, in the dims given: each
// of the returned options is implied by the whole condition, so a message
// that satisfies none of the alternatives of any one option makes the
// condition false. It looks through && and ||, and under a negation only
// where lower made it a comparison of its own (`!(hour() < 9)` is
// `hour() >= 9`): `msg.Type != "text"` and `not (msg.Text in [...])`
// require no value the index can look up.
func needsOf(g *guard, dims dimSet) []*need {
	switch g.op {
	case gAnd:
		var out []*need
		for _, k := range g.kids {
			out = append(out, needsOf(k, dims)...)
		}
		return out[:min(len(out), maxOptions)]
	case gOr:
		// Every side must narrow, or a message the index passes over
		// could satisfy the side that does not.
		u := &need{}
		for _, k := range g.kids {
			b := best(needsOf(k, dims))
			if b == nil {
				return nil
			}
			u = u.union(b)
		}
		return []*need{u}
	case gEq:
		if dims.has(g.f) {
			return []*need{{alts: []alt{{dim: g.f, s: g.s}}}}
		}
	case gIn:
		if !dims.has(g.f) {
			return nil
		}
		n := &need{alts: make([]alt, 0, len(g.set))}
		for _, s := range g.set {
			n.alts = append(n.alts, alt{dim: g.f, s: s})
		}
		return []*need{n}
	case gContains, gPrefix, gSuffix:
		// A prefix or suffix is also contained; the condition itself is
		// still evaluated for every candidate.
		if g.s != "" && dims.has(dimContains) {
			return []*need{{alts: []alt{{dim: dimContains, s: g.s}}}}
		}
	case gContainsAny:
		if !dims.has(dimContains) {
			return nil
		}
		n := &need{alts: make([]alt, 0, len(g.set))}
		for _, s := range g.set {
			if s == "" {
				return nil
			}
			n.alts = append(n.alts, alt{dim: dimContains, s: s})
		}
		return []*need{n}
	case gFromSelf:
		if dims.has(fFromSelf) {
			return []*need{{alts: []alt{{dim: fFromSelf, s: boolString(g.want)}}}}
		}
	case gUnknown:
		if dims.has(dimContains) {
			return g.needs
		}
	case gInt:
		if lo, hi, ok := intervalOf(g.cmp, g.n); ok && dims.has(slotDim(g.slot)) {
			return []*need{spanNeed(g.slot, [2]int{lo, hi})}
		}
	case gIntIn:
		if dims.has(slotDim(g.slot)) {
			spans := make([][2]int, len(g.ints))
			for i, v := range g.ints {
				spans[i] = [2]int{v, v}
			}
			return []*need{spanNeed(g.slot, spans...)}
		}
	case gBetween:
		if !dims.has(slotDim(sClock)) {
			return nil
		}
		from, to := g.n, g.ints[0]
		if from <= to {
			return []*need{spanNeed(sClock, [2]int{from, to - 1})}
		}
		return []*need{spanNeed(sClock, [2]int{from, slotMax[sClock]}, [2]int{0, to - 1})}
	}
	return nil
}

// slotMax is the largest value of each slot; the smallest is 0.
var slotMax = [numSlots]int{sLen: math.MaxInt, sHour: 23, sMinute: 59, sWeekday: 6, sClock: 24*60 - 1}

// intervalOf turns `slot cmp n` into the interval of the slot's values it
// holds for; != holds for two, which says too little to look up.
func intervalOf(cmp string, n int) (lo, hi int, ok bool) {
	switch cmp {
	case "==":
		return n, n, true
	case "<":
		if n == math.MinInt {
			return 1, 0, true
		}
		return math.MinInt, n - 1, true
	case "<=":
		return math.MinInt, n, true
	case ">":
		if n == math.MaxInt {
			return 1, 0, true
		}
		return n + 1, math.MaxInt, true
	case ">=":
		return n, math.MaxInt, true
	}
	return 0, 0, false
}

// spanNeed is the need of a slot being in one of spans, each clamped to the
// slot's values; a span outside them is left out, as never holding.
func spanNeed(s islot, spans ...[2]int) *need {
	n := &need{alts: make([]alt, 0, len(spans))}
	for _, sp := range spans {
		lo, hi := max(sp[0], 0), min(sp[1], slotMax[s])
		if lo <= hi {
			n.alts = append(n.alts, alt{dim: slotDim(s), lo: lo, hi: hi})
		}
	}
	return n
}

// slotWeight estimates how many messages fall in an alt's span: the share
// of the slot's values it covers, and for a length, how short it lets a
// text be.
func (a *alt) slotWeight() int {
	s := islot(a.dim - dimSlot)
	if s == sLen {
		switch {
		case a.lo >= 50:
			return 10
		case a.lo > 0:
			return 30
		}
		return 60
	}
	return 1 + 60*(a.hi-a.lo+1)/(slotMax[s]+1)
}

// Slots are looked up in buckets of values: each bucket lists the rules
// whose span meets it, and the guard checks the exact span. A length's
// buckets are its values up to 63, then one per power of two.
const lenBuckets = 64 + 64 - 7

var slotBuckets = [numSlots]int{sLen: lenBuckets, sHour: 24, sMinute: 60, sWeekday: 7, sClock: 24 * 4}

func bucket(s islot, v int) int {
	switch s {
	case sLen:
		if v < 64 {
			return v
		}
		return 64 + bits.Len(uint(v)) - 7
	case sClock:
		return v / 15
	}
	return v
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
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

// index finds the rules a message could match. Rules are numbered in
// evaluation order; every list is sorted.
//
// A rule that requires one of a few accounts is held in those accounts'
// shards only, so that a daemon serving many shops looks at the rules of
// the message's shop and those of no shop in particular, however many
// shops there are. Inside a shard, a rule is looked up by its most
// selective other requirement; its guard then checks every requirement of
// each candidate before the VM runs.
type index struct {
	shards map[string]*shard // by account
	any    shard
	// ac finds the keywords of every shard in a text, by number: shops
	// share most keywords, and one pass serves them all.
	ac    *automaton
	plans []plan // by rule number
	// hot holds, by rule number, what evaluating a candidate reads.
	hot []hot
}

// hot is the guard a candidate is checked by: its rule's guard without the
// parts the look-up that found it has proven (the account of its shard, the
// key it was found by), so that a rule found by `account == "shop-1" &&
// msg.Text contains "价格"` is not asked either again.
type hot struct {
	guard *guard // nil: no condition
	exact bool
}

// shard is the index of the rules of one account, or of any account.
type shard struct {
	eq [numFields]map[string][]int32
	kw map[int32][]int32 // by keyword number
	// spans hold, by slot and bucket, the rules looked up by a slot; nil
	// for a slot no rule is looked up by.
	spans [numSlots][][]int32
	// always are the shard's rules that no look-up narrows; an account's
	// shard holds those of the any-account shard too.
	always []int32
}

// plan is how the index holds one rule, for ExplainIndex.
type plan struct {
	// accounts are the only accounts the rule is looked at for; nil for
	// any.
	accounts []string
	// primary is the requirement the rule is looked up by; nil when it is
	// evaluated for every message of its accounts.
	primary *need
	// options are every requirement found.
	options []*need
}

type shardBuilder struct {
	p *shard
	// ac and keywords are the index's, shared by every shard.
	ac       *acBuilder
	keywords map[string]int32
}

func (b *shardBuilder) add(id int32, n *need) {
	if n == nil {
		b.p.always = appendOnce(b.p.always, id)
		return
	}
	for _, a := range n.alts {
		if a.dim == dimContains {
			k, ok := b.keywords[a.s]
			if !ok {
				k = int32(len(b.keywords))
				b.keywords[a.s] = k
				b.ac.add(a.s, k)
			}
			if b.p.kw == nil {
				b.p.kw = map[int32][]int32{}
			}
			b.p.kw[k] = appendOnce(b.p.kw[k], id)
			continue
		}
		if a.dim >= dimSlot {
			s := islot(a.dim - dimSlot)
			if b.p.spans[s] == nil {
				b.p.spans[s] = make([][]int32, slotBuckets[s])
			}
			for k := bucket(s, a.lo); k <= bucket(s, a.hi); k++ {
				b.p.spans[s][k] = appendOnce(b.p.spans[s][k], id)
			}
			continue
		}
		if b.p.eq[a.dim] == nil {
			b.p.eq[a.dim] = map[string][]int32{}
		}
		b.p.eq[a.dim][a.s] = appendOnce(b.p.eq[a.dim][a.s], id)
	}
}

// buildIndex indexes rules by what their guards require in the dims given.
func buildIndex(rules []*Rule, dims dimSet) *index {
	ix := &index{shards: map[string]*shard{}, plans: make([]plan, len(rules)), hot: make([]hot, len(rules))}
	// Count how many rules could use each key, to give each rule the
	// option that leads the fewest messages to it.
	shared := map[string]int{}
	options := make([][]*need, len(rules))
	owners := make([][]int, len(rules))
	for i, r := range rules {
		if r.cond == nil || r.cond.guard == nil {
			continue
		}
		options[i], owners[i] = conjunctNeeds(r.cond.guard, dims)
		for _, o := range options[i] {
			for _, k := range o.keys() {
				shared[k]++
			}
		}
	}
	var ac acBuilder
	keywords := map[string]int32{}
	anyB := &shardBuilder{p: &ix.any, ac: &ac, keywords: keywords}
	builders := map[string]*shardBuilder{}
	for i := range rules {
		id, opts := int32(i), options[i]
		// The account option with the fewest accounts picks the shards.
		acct := -1
		if dims.has(fAccount) {
			for j, o := range opts {
				if o.only(fAccount) && (acct < 0 || len(o.alts) < len(opts[acct].alts)) {
					acct = j
				}
			}
		}
		var n *need
		bestCost, primary := 0, -1
		for j, o := range opts {
			if j == acct {
				continue
			}
			cost := o.weight()
			for _, k := range o.keys() {
				cost += 4 * shared[k]
			}
			if n == nil || cost < bestCost {
				n, bestCost, primary = o, cost, j
			}
		}
		pl := &ix.plans[i]
		pl.primary, pl.options = n, opts
		ix.hot[i] = hotOf(rules[i].cond, owners[i], acct, primary)
		if acct < 0 {
			anyB.add(id, n)
			continue
		}
		pl.accounts = []string{}
		for _, a := range opts[acct].alts {
			b := builders[a.s]
			if b == nil {
				b = &shardBuilder{p: &shard{}, ac: &ac, keywords: keywords}
				builders[a.s] = b
				ix.shards[a.s] = b.p
			}
			b.add(id, n)
			if !slices.Contains(pl.accounts, a.s) {
				pl.accounts = append(pl.accounts, a.s)
			}
		}
	}
	ix.ac = ac.build()
	for _, b := range builders {
		b.p.always = mergeSorted(b.p.always, ix.any.always)
	}
	return ix
}

// conjunctNeeds is needsOf, with the number of the top-level conjunct each
// option comes from.
func conjunctNeeds(g *guard, dims dimSet) (opts []*need, owners []int) {
	conj := []*guard{g}
	if g.op == gAnd {
		conj = g.kids
	}
	for i, k := range conj {
		for _, o := range needsOf(k, dims) {
			opts, owners = append(opts, o), append(owners, i)
		}
	}
	n := min(len(opts), maxOptions)
	return opts[:n], owners[:n]
}

// hotOf is the guard of a rule found by options acct and primary (-1 for
// none) of owners: its conjuncts without those whose option says all they
// do. A rule found through such an option satisfies it.
func hotOf(c *cond, owners []int, acct, primary int) hot {
	if c == nil || c.guard == nil {
		return hot{}
	}
	g := c.guard
	conj := []*guard{g}
	if g.op == gAnd {
		conj = g.kids
	}
	proven := func(k int) bool {
		for _, j := range []int{acct, primary} {
			if j >= 0 && owners[j] == k {
				switch conj[k].op {
				case gEq, gIn, gFromSelf, gContains, gContainsAny:
					return true
				}
			}
		}
		return false
	}
	var rest []*guard
	for k, kid := range conj {
		if !proven(k) {
			rest = append(rest, kid)
		}
	}
	switch {
	case len(rest) == len(conj):
	case len(rest) == 0:
		g = &guard{op: gConst, want: true}
	case len(rest) == 1:
		g = rest[0]
	default:
		g = &guard{op: gAnd, kids: rest}
	}
	return hot{guard: g, exact: c.exact}
}

// mergeSorted merges two sorted lists without repeats into a new one.
func mergeSorted(a, b []int32) []int32 {
	out := make([]int32, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0] < b[0]):
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}

// holds reports whether the message satisfies the need.
func (n *need) holds(p *probe) bool {
	for _, a := range n.alts {
		switch {
		case a.dim == dimContains:
			if strings.Contains(p.s[fText], a.s) {
				return true
			}
		case a.dim >= dimSlot:
			if v := p.slot(islot(a.dim - dimSlot)); a.lo <= v && v <= a.hi {
				return true
			}
		case p.s[a.dim] == a.s:
			return true
		}
	}
	return false
}

// keys names each alternative of the need, for counting shared ones.
func (n *need) keys() []string {
	ks := make([]string, len(n.alts))
	for i, a := range n.alts {
		ks[i] = string(rune('a'+a.dim)) + a.s + "\x00" + strconv.Itoa(a.lo) + "-" + strconv.Itoa(a.hi)
	}
	return ks
}

func appendOnce(l []int32, id int32) []int32 {
	if len(l) > 0 && l[len(l)-1] == id {
		return l
	}
	return append(l, id)
}

// candidates appends to buf, sorted and without repeats, the looked-up
// rules the message could match, and returns as always the rules to
// evaluate for every message of its account. kws is a buffer for the
// keywords found.
func (ix *index) candidates(buf, kws []int32, p *probe) (cands, kwsOut, always []int32) {
	kws = ix.ac.appendMatches(kws, p.s[fText])
	if len(kws) > 1 {
		slices.Sort(kws)
		kws = slices.Compact(kws)
	}
	buf = ix.any.lookup(buf, kws, p)
	always = ix.any.always
	if len(ix.shards) > 0 {
		if pt := ix.shards[p.s[fAccount]]; pt != nil {
			buf = pt.lookup(buf, kws, p)
			always = pt.always
		}
	}
	if len(buf) > 1 {
		slices.Sort(buf)
		buf = slices.Compact(buf)
	}
	return buf, kws, always
}

func (pt *shard) lookup(buf, kws []int32, p *probe) []int32 {
	for d, m := range &pt.eq {
		if m != nil {
			buf = append(buf, m[p.s[d]]...)
		}
	}
	for s, buckets := range &pt.spans {
		if buckets != nil {
			buf = append(buf, buckets[bucket(islot(s), p.slot(islot(s)))]...)
		}
	}
	if pt.kw != nil {
		for _, k := range kws {
			buf = append(buf, pt.kw[k]...)
		}
	}
	return buf
}

// automaton is an Aho-Corasick automaton over the keywords of `contains`
// constraints: one pass over a text finds every keyword in it, whatever the
// number of keywords. It reports each by the number it was added with.
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

// appendMatches appends the numbers of every keyword found in text.
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
	for _, a := range n.alts {
		switch {
		case a.dim == dimContains:
			parts = append(parts, "msg.Text contains "+quote(a.s))
		case a.dim == fFromSelf:
			parts = append(parts, "msg.FromSelf == "+a.s)
		case a.dim >= dimSlot:
			parts = append(parts, a.spanString())
		default:
			parts = append(parts, fieldNames[a.dim]+" == "+quote(a.s))
		}
	}
	if len(parts) == 0 {
		return "nothing (the condition can never be true)"
	}
	return strings.Join(parts, " or ")
}

// spanString describes a slot's span the way rules write it.
func (a *alt) spanString() string {
	s := islot(a.dim - dimSlot)
	show := strconv.Itoa
	if s == sClock {
		show = func(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
	}
	switch {
	case a.lo == a.hi:
		return fmt.Sprintf("%s == %s", slotNames[s], show(a.lo))
	case a.hi == slotMax[s]:
		return fmt.Sprintf("%s >= %s", slotNames[s], show(a.lo))
	case a.lo == 0:
		return fmt.Sprintf("%s <= %s", slotNames[s], show(a.hi))
	}
	return fmt.Sprintf("%s in %s..%s", slotNames[s], show(a.lo), show(a.hi))
}
