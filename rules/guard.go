package rules

import (
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"

	"github.com/finderbot/finderbot/sdk"
)

// A guard is a condition lowered to what Go can decide without expr's VM:
// comparisons of message fields, the account, the event type, len(msg.Text)
// and the time helpers against literals, joined by &&, || and !. Whatever
// else a condition holds is an unknown leaf, left to the VM. Guards serve
// twice: the index reads its look-up keys off them, and Match evaluates them
// before the VM, so that a rule the message cannot satisfy costs a few
// nanoseconds, and a rule made only of such comparisons never runs the VM.
type guard struct {
	// The fields eval reads come first, to share a cache line.
	op   gop
	f    gfield // the string field of gEq, gIn
	slot islot  // the number of gInt, gIntIn, gBetween
	// want is the value gFromSelf and gConst stand for.
	want bool
	n    int
	s    string
	kids []*guard
	cmp  string   // the comparison of gInt: == != < <= > >=
	set  []string // gIn and gContainsAny
	ints []int    // gIntIn; the end of gBetween's window
	// needs are the index options of an unknown leaf (a regex's literals).
	needs []*need
	// conj is, for a top-level conjunct, its place among the condition's
	// conjuncts (conjuncts), counted from 1; 0 for other guards. It names
	// its source for `finderbot check --explain-index`.
	conj int
}

type gop uint8

const (
	gUnknown     gop = iota // left to the VM
	gConst                  // want
	gAnd                    // every kid
	gOr                     // any kid
	gNot                    // not kids[0]
	gEq                     // field == s
	gIn                     // field in set
	gContains               // msg.Text contains s
	gPrefix                 // msg.Text startsWith s
	gSuffix                 // msg.Text endsWith s
	gContainsAny            // containsAny(msg.Text, set...)
	gFromSelf               // msg.FromSelf == want
	gInt                    // slot cmp n
	gIntIn                  // slot in ints
	gBetween                // between(now, from, to): the minute of the day in [n, ints[0]), wrapping past midnight
)

// gfield is a string a guard can read from the message, its account or its
// event. The index looks each of them up by equality.
type gfield uint8

const (
	fText gfield = iota
	fType
	fFrom
	fTo
	fSession
	fSysType
	fAccount
	fEventType
	// fFromSelf is msg.FromSelf as "true" or "false": the index looks it
	// up like a string.
	fFromSelf
	numFields
)

// fieldNames are the fields as rules write them.
var fieldNames = [numFields]string{"msg.Text", "msg.Type", "msg.From", "msg.To", "msg.Session", "msg.Sys.Type", "account", "event.Type", "msg.FromSelf"}

// islot is a number computed once per message, when a guard first asks.
type islot uint8

const (
	sLen islot = iota // len(msg.Text), in characters as expr counts
	sHour
	sMinute
	sWeekday
	sClock // minutes since midnight, for between
	numSlots
)

var slotNames = []string{"len(msg.Text)", "hour()", "minute()", "weekday()", "the time of day"}

// tri is a guard's verdict: false and true are certain; unknown means only
// the VM can tell.
type tri uint8

const (
	tFalse tri = iota
	tTrue
	tUnknown
)

// probe holds what guards and the index read of one message, each value
// computed once however many rules read it.
type probe struct {
	s       [numFields]string
	now     time.Time // in the set's zone
	counted bool      // ints[sLen] is set
	clocked bool      // ints[sHour:] are set
	ints    [numSlots]int
}

func (p *probe) fill(msg *sdk.Message, account, eventType string, now time.Time) {
	p.s[fText], p.s[fType], p.s[fFrom], p.s[fTo], p.s[fSession] = msg.Text, msg.Type, msg.From, msg.To, msg.Session
	p.s[fSysType] = ""
	if msg.Sys != nil {
		p.s[fSysType] = msg.Sys.Type
	}
	p.s[fAccount], p.s[fEventType] = account, eventType
	p.s[fFromSelf] = "false"
	if msg.FromSelf {
		p.s[fFromSelf] = "true"
	}
	p.now, p.clocked, p.counted = now, false, false
}

func (p *probe) slot(s islot) int {
	if s == sLen {
		if !p.counted {
			p.ints[sLen] = utf8.RuneCountInString(p.s[fText])
			p.counted = true
		}
		return p.ints[sLen]
	}
	if !p.clocked {
		p.ints[sHour], p.ints[sMinute] = p.now.Hour(), p.now.Minute()
		p.ints[sWeekday] = int(p.now.Weekday())
		p.ints[sClock] = p.ints[sHour]*60 + p.ints[sMinute]
		p.clocked = true
	}
	return p.ints[s]
}

// eval decides the guard for a message. A verdict of false is certain: the
// condition cannot be true. A guard without unknown leaves (exact) is the
// condition itself.
func (g *guard) eval(p *probe) tri {
	switch g.op {
	case gConst:
		return triOf(g.want)
	case gAnd, gOr:
		// A part that is false decides an &&, one that is true an ||.
		decisive, out := tFalse, tTrue
		if g.op == gOr {
			decisive, out = tTrue, tFalse
		}
		for _, k := range g.kids {
			switch v := k.eval(p); v {
			case decisive:
				return v
			case tUnknown:
				out = tUnknown
			}
		}
		return out
	case gNot:
		switch v := g.kids[0].eval(p); v {
		case tUnknown:
			return v
		default:
			return v ^ 1
		}
	case gEq:
		return triOf(p.s[g.f] == g.s)
	case gIn:
		return triOf(slices.Contains(g.set, p.s[g.f]))
	case gContains:
		return triOf(strings.Contains(p.s[fText], g.s))
	case gPrefix:
		return triOf(strings.HasPrefix(p.s[fText], g.s))
	case gSuffix:
		return triOf(strings.HasSuffix(p.s[fText], g.s))
	case gContainsAny:
		for _, k := range g.set {
			if strings.Contains(p.s[fText], k) {
				return tTrue
			}
		}
		return tFalse
	case gFromSelf:
		return triOf((p.s[fFromSelf] == "true") == g.want)
	case gInt:
		return triOf(compareInt(p.slot(g.slot), g.cmp, g.n))
	case gIntIn:
		return triOf(slices.Contains(g.ints, p.slot(g.slot)))
	case gBetween:
		m := p.slot(sClock)
		if g.n <= g.ints[0] {
			return triOf(m >= g.n && m < g.ints[0])
		}
		return triOf(m >= g.n || m < g.ints[0])
	}
	return tUnknown
}

func triOf(b bool) tri {
	if b {
		return tTrue
	}
	return tFalse
}

func compareInt(a int, op string, b int) bool {
	switch op {
	case "==":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	}
	return a >= b
}

// exact reports whether the guard decides the condition alone.
func (g *guard) exact() bool {
	if g.op == gUnknown {
		return false
	}
	for _, k := range g.kids {
		if !k.exact() {
			return false
		}
	}
	return true
}

// cost estimates the work of evaluating a guard, to try cheap parts first.
func (g *guard) cost() int {
	switch g.op {
	case gUnknown:
		return 1000
	case gAnd, gOr, gNot:
		c := 0
		for _, k := range g.kids {
			c += k.cost()
		}
		return c
	case gIn, gIntIn:
		return 1 + (len(g.set)+len(g.ints))/4
	case gContains, gPrefix, gSuffix:
		return 4
	case gContainsAny:
		return 4 * len(g.set)
	case gInt, gBetween:
		return 2
	}
	return 1
}

// lower turns a type-checked condition into a guard. Parts of && and ||
// are put cheapest first: a guard's leaves cannot fail, so their order
// changes nothing but the work.
func lower(node ast.Node) *guard {
	g := lowerNode(node)
	if g.op == gAnd && len(conjuncts(node)) == len(g.kids) {
		for i, k := range g.kids {
			k.conj = i + 1
		}
	}
	g.order()
	return g
}

// conjuncts flattens the top-level && of a condition, as lowerNode does.
func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

func lowerNode(node ast.Node) *guard {
	switch n := node.(type) {
	case *ast.BoolNode:
		return &guard{op: gConst, want: n.Value}
	case *ast.MemberNode:
		if isFromSelf(n) {
			return &guard{op: gFromSelf, want: true}
		}
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			break
		}
		return negate(lowerNode(n.Node))
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			op := gAnd
			if n.Operator == "||" || n.Operator == "or" {
				op = gOr
			}
			g := &guard{op: op}
			for _, side := range []ast.Node{n.Left, n.Right} {
				k := lowerNode(side)
				if k.op == op {
					g.kids = append(g.kids, k.kids...)
				} else {
					g.kids = append(g.kids, k)
				}
			}
			return g
		case "==", "!=":
			if g := lowerEquality(n.Left, n.Right); g != nil {
				if n.Operator == "!=" {
					return negate(g)
				}
				return g
			}
		case "<", "<=", ">", ">=":
			if s, ok := intSlot(n.Left); ok {
				if v, ok := n.Right.(*ast.IntegerNode); ok {
					return &guard{op: gInt, slot: s, cmp: n.Operator, n: v.Value}
				}
			}
			if s, ok := intSlot(n.Right); ok {
				if v, ok := n.Left.(*ast.IntegerNode); ok {
					return &guard{op: gInt, slot: s, cmp: flip(n.Operator), n: v.Value}
				}
			}
		case "in":
			return lowerIn(n)
		case "contains", "startsWith", "endsWith":
			if f, ok := stringField(n.Left); ok && f == fText {
				if s, ok := n.Right.(*ast.StringNode); ok {
					op := map[string]gop{"contains": gContains, "startsWith": gPrefix, "endsWith": gSuffix}[n.Operator]
					return &guard{op: op, s: s.Value}
				}
			}
		case "matches":
			if f, ok := stringField(n.Left); ok && f == fText {
				if s, ok := n.Right.(*ast.StringNode); ok {
					g := &guard{op: gUnknown}
					for _, lits := range regexLiterals(s.Value) {
						alts := make([]alt, len(lits))
						for i, l := range lits {
							alts[i] = alt{dim: dimContains, s: l}
						}
						g.needs = append(g.needs, &need{alts: alts})
					}
					return g
				}
			}
		}
	case *ast.CallNode:
		return lowerCall(n)
	}
	return &guard{op: gUnknown}
}

// negate returns the guard of !g, as a leaf where one says the same, so
// that the index can look it up.
func negate(g *guard) *guard {
	switch g.op {
	case gUnknown:
		return &guard{op: gUnknown} // a regex's literals say nothing of its negation
	case gConst, gFromSelf:
		g.want = !g.want
		return g
	case gNot:
		return g.kids[0]
	case gInt:
		g.cmp = map[string]string{"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}[g.cmp]
		return g
	case gBetween:
		// Outside [from, to) is [to, from), but for an empty window,
		// whose outside is the whole day.
		if g.n != g.ints[0] {
			g.n, g.ints[0] = g.ints[0], g.n
			return g
		}
	case gIntIn:
		// An hour, a minute or a weekday has few values: those not
		// listed.
		if g.slot != sLen {
			var rest []int
			for v := 0; v <= slotMax[g.slot]; v++ {
				if !slices.Contains(g.ints, v) {
					rest = append(rest, v)
				}
			}
			g.ints = rest
			return g
		}
	case gAnd, gOr:
		// De Morgan: !(a && b) is !a || !b, and expr short-circuits
		// both alike.
		g.op = gAnd + gOr - g.op
		for i, k := range g.kids {
			g.kids[i] = negate(k)
		}
		return g
	}
	return &guard{op: gNot, kids: []*guard{g}}
}

// flip mirrors a comparison: 3 < x is x > 3.
func flip(op string) string {
	switch op {
	case "<":
		return ">"
	case "<=":
		return ">="
	case ">":
		return "<"
	case ">=":
		return "<="
	}
	return op
}

func lowerEquality(a, b ast.Node) *guard {
	for _, p := range [][2]ast.Node{{a, b}, {b, a}} {
		if f, ok := stringField(p[0]); ok {
			if s, ok := p[1].(*ast.StringNode); ok {
				return &guard{op: gEq, f: f, s: s.Value}
			}
		}
		if isFromSelf(p[0]) {
			if v, ok := p[1].(*ast.BoolNode); ok {
				return &guard{op: gFromSelf, want: v.Value}
			}
		}
		if s, ok := intSlot(p[0]); ok {
			if v, ok := p[1].(*ast.IntegerNode); ok {
				return &guard{op: gInt, slot: s, cmp: "==", n: v.Value}
			}
		}
	}
	return nil
}

func lowerIn(n *ast.BinaryNode) *guard {
	arr, ok := n.Right.(*ast.ArrayNode)
	if !ok {
		return &guard{op: gUnknown}
	}
	if f, ok := stringField(n.Left); ok {
		if set, ok := literals(arr.Nodes, stringValue); ok {
			return &guard{op: gIn, f: f, set: set}
		}
	}
	if s, ok := intSlot(n.Left); ok {
		if ints, ok := literals(arr.Nodes, func(v *ast.IntegerNode) int { return v.Value }); ok {
			return &guard{op: gIntIn, slot: s, ints: ints}
		}
	}
	return &guard{op: gUnknown}
}

func stringValue(v *ast.StringNode) string { return v.Value }

// literals returns the values of nodes when every one is a literal of the
// kind N.
func literals[N ast.Node, T any](nodes []ast.Node, value func(N) T) ([]T, bool) {
	out := make([]T, 0, len(nodes))
	for _, e := range nodes {
		v, ok := e.(N)
		if !ok {
			return nil, false
		}
		out = append(out, value(v))
	}
	return out, true
}

func lowerCall(n *ast.CallNode) *guard {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return &guard{op: gUnknown}
	}
	switch id.Value {
	case "containsAny":
		if len(n.Arguments) < 2 {
			break
		}
		if f, ok := stringField(n.Arguments[0]); !ok || f != fText {
			break
		}
		if set, ok := literals(n.Arguments[1:], stringValue); ok {
			return &guard{op: gContainsAny, set: set}
		}
	case "between":
		if len(n.Arguments) != 3 || !isNow(n.Arguments[0]) {
			break
		}
		from, ok1 := n.Arguments[1].(*ast.StringNode)
		to, ok2 := n.Arguments[2].(*ast.StringNode)
		if !ok1 || !ok2 {
			break
		}
		f, err1 := parseClock(from.Value)
		e, err2 := parseClock(to.Value)
		if err1 != nil || err2 != nil {
			break
		}
		return &guard{op: gBetween, slot: sClock, n: f, ints: []int{e}}
	}
	return &guard{op: gUnknown}
}

// order puts the cheapest parts of every && and || first.
func (g *guard) order() {
	for _, k := range g.kids {
		k.order()
	}
	if g.op == gAnd || g.op == gOr {
		slices.SortStableFunc(g.kids, func(a, b *guard) int { return cmp.Compare(a.cost(), b.cost()) })
	}
}

// stringField recognises the fields a guard reads: msg.Text, msg.Type,
// msg.From, msg.To, msg.Session, msg.Sys.Type, account and event.Type.
func stringField(n ast.Node) (gfield, bool) {
	if id, ok := n.(*ast.IdentifierNode); ok {
		return fAccount, id.Value == "account"
	}
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional {
		return 0, false
	}
	p, ok := m.Property.(*ast.StringNode)
	if !ok {
		return 0, false
	}
	switch on := m.Node.(type) {
	case *ast.IdentifierNode:
		switch {
		case on.Value == "event" && p.Value == "Type":
			return fEventType, true
		case on.Value != "msg":
			return 0, false
		}
		switch p.Value {
		case "Text":
			return fText, true
		case "Type":
			return fType, true
		case "From":
			return fFrom, true
		case "To":
			return fTo, true
		case "Session":
			return fSession, true
		}
	case *ast.MemberNode:
		// msg.Sys is never nil to a rule: an absent one reads as empty.
		if p.Value != "Type" || on.Optional {
			return 0, false
		}
		id, ok := on.Node.(*ast.IdentifierNode)
		q, ok2 := on.Property.(*ast.StringNode)
		if ok && ok2 && id.Value == "msg" && q.Value == "Sys" {
			return fSysType, true
		}
	}
	return 0, false
}

func isFromSelf(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	p, ok2 := m.Property.(*ast.StringNode)
	return ok && ok2 && id.Value == "msg" && p.Value == "FromSelf"
}

func isNow(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "now"
}

// intSlot recognises len(msg.Text) and hour(now), minute(now),
// weekday(now).
func intSlot(n ast.Node) (islot, bool) {
	switch c := n.(type) {
	case *ast.BuiltinNode:
		if c.Name == "len" && len(c.Arguments) == 1 {
			if f, ok := stringField(c.Arguments[0]); ok && f == fText {
				return sLen, true
			}
		}
	case *ast.CallNode:
		id, ok := c.Callee.(*ast.IdentifierNode)
		if !ok || len(c.Arguments) != 1 || !isNow(c.Arguments[0]) {
			return 0, false
		}
		switch id.Value {
		case "hour":
			return sHour, true
		case "minute":
			return sMinute, true
		case "weekday":
			return sWeekday, true
		}
	}
	return 0, false
}
