package rules

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// broadWeight is the weight from which a look-up finds a rule for most
// messages: msg.Type == "text", msg.FromSelf == false, a long time window.
const broadWeight = 50

// ExplainIndex writes how the index holds the message and event rules, for
// `finderbot check --explain-index`: how many a message finds by each kind
// of look-up, and the rules it looks at for every message, or nearly every
// one, with why and what each costs. Those are the rules that make a large
// set slow.
func (s *Set) ExplainIndex(w io.Writer) {
	s.explainIndex(w, "message", s.message, s.index)
	s.explainIndex(w, "event", s.event, s.events)
}

func (s *Set) explainIndex(w io.Writer, kind string, rules []*Rule, ix *index) {
	if len(rules) == 0 {
		return
	}
	byDim := map[string]int{}
	accounts := map[string]bool{}
	var tied, exact int
	var always, broad []string
	for i, r := range rules {
		pl := ix.plans[i]
		for _, a := range pl.accounts {
			accounts[a] = true
		}
		if pl.accounts != nil {
			tied++
		}
		if r.cond == nil || r.cond.exact || r.cond.always {
			exact++
		}
		switch {
		case pl.primary == nil:
			always = append(always, fmt.Sprintf("%s: %s; %s", ruleAt(r), alwaysWhy(r, pl), cost(r)))
		case pl.primary.weight() >= broadWeight:
			broad = append(broad, fmt.Sprintf("%s: looked up by %s, which most messages satisfy; %s", ruleAt(r), pl.primary, cost(r)))
			fallthrough
		default:
			byDim[lookedUpBy(pl.primary)]++
		}
	}
	fmt.Fprintf(w, "index of %s: %d looked up, %d evaluated for every %s; %d decided without the expression VM\n",
		plural(len(rules), kind+" rule"), len(rules)-len(always), len(always), kind, exact)
	if len(accounts) > 0 {
		fmt.Fprintf(w, "  tied to accounts: %d rules, in %d accounts; a %s sees only its account's rules and those of no account\n", tied, len(accounts), kind)
	}
	dims := make([]string, 0, len(byDim))
	for d := range byDim {
		dims = append(dims, d)
	}
	slices.Sort(dims)
	for _, d := range dims {
		fmt.Fprintf(w, "  looked up by %s: %d\n", d, byDim[d])
	}
	writeList(w, fmt.Sprintf("evaluated for every %s", kind), always)
	writeList(w, fmt.Sprintf("looked up for nearly every %s", kind), broad)
}

func writeList(w io.Writer, title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "  %s (%d):\n", title, len(lines))
	for _, l := range lines {
		fmt.Fprintf(w, "    %s\n", l)
	}
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func ruleAt(r *Rule) string { return fmt.Sprintf("%s (%s:%d)", r.Name, r.File, r.Line) }

// lookedUpBy names the kind of a need's look-up: its dims, as rules write
// them.
func lookedUpBy(n *need) string {
	var names []string
	for _, a := range n.alts {
		name := "msg.Text contains"
		switch {
		case a.dim >= dimSlot:
			name = slotNames[a.dim-dimSlot]
		case a.dim != dimContains:
			name = fieldNames[a.dim]
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "nothing (never true)"
	}
	return strings.Join(names, " or ")
}

// cost says what evaluating a rule costs.
func cost(r *Rule) string {
	if r.cond == nil || r.cond.exact || r.cond.always {
		return "cheap: decided without the expression VM"
	}
	if r.cond.guard != nil && r.cond.guard.op == gAnd && r.cond.guard.kids[0].op != gUnknown {
		return "its cheap parts are checked first, then it runs the expression VM"
	}
	return "runs the expression VM"
}

// alwaysWhy says why no look-up narrows a rule.
func alwaysWhy(r *Rule, pl plan) string {
	var why string
	switch {
	case r.cond == nil:
		why = "no `when`: it matches everything"
	case r.cond.always:
		why = "its condition is always true"
	default:
		g := r.cond.guard
		parts := []*guard{g}
		if g.op == gAnd && g.kids[0].conj > 0 {
			parts = g.kids
		}
		// The conjuncts as written, for what each part says.
		var srcs []ast.Node
		if tree, err := parser.Parse(r.When); err == nil {
			srcs = conjuncts(tree.Node)
		}
		var reasons []string
		for _, k := range parts {
			if len(pl.accounts) > 0 && (k.op == gEq || k.op == gIn) && k.f == fAccount {
				continue // the account's shard is the look-up
			}
			src := r.When
			if k.conj > 0 && k.conj <= len(srcs) {
				src = srcs[k.conj-1].String()
			}
			reasons = append(reasons, "`"+src+"` "+unindexable(k))
		}
		why = strings.Join(reasons, "; ")
	}
	if len(pl.accounts) > 0 {
		return fmt.Sprintf("for every message of %s: %s", strings.Join(pl.accounts, ", "), why)
	}
	return why
}

// unindexable says why the index cannot look a guard up.
func unindexable(g *guard) string {
	switch g.op {
	case gNot:
		return "is a negation (!=, not in, !), true of almost every value"
	case gOr:
		return "is an || with a side that cannot be looked up"
	case gInt:
		if g.cmp == "!=" {
			return "(!=) is true of almost every value"
		}
	case gContains, gPrefix, gSuffix, gContainsAny:
		return `looks for "", which every text contains`
	case gConst:
		return "is a constant"
	case gUnknown:
		return "reads what only the expression VM computes"
	}
	return "cannot be looked up"
}
