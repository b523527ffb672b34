package rules

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/finderbot/finderbot/sdk"
)

// Trace is what happened to one message rule when a message was explained.
type Trace struct {
	// Rule is the rule's name.
	Rule string
	// Matched is true when the condition held.
	Matched bool
	// Actions are the rendered actions of a matching rule.
	Actions []Action
	// Candidate is false when the index ruled the rule out without
	// evaluating it; Need then says what the message lacked.
	Candidate bool
	Need      string
	// Why says, for a rule that did not match, which part of the condition
	// was false and the values it saw.
	Why string
	// Err is the evaluation error of a rule that failed.
	Err error
	// Skipped names the stop rule that ended evaluation before this rule.
	Skipped string
}

// Reason says why the rule did not match, as `finderbot replay --explain`
// prints it: the stop rule that kept it from being evaluated, its
// evaluation error, what the message lacked for the index to consider it,
// or the false part of its condition. It is "" for a rule that matched and
// rendered its actions.
func (t Trace) Reason() string {
	switch {
	case t.Skipped != "":
		return fmt.Sprintf("not evaluated, rule %q stopped evaluation", t.Skipped)
	case t.Err != nil:
		return fmt.Sprintf("failed: %v", t.Err)
	case t.Matched:
		return ""
	case !t.Candidate:
		return "not a candidate, needs " + t.Need
	}
	return t.Why
}

// Explain evaluates every message rule against msg, as Match would but
// without cooldowns, and says for each why it matched or not. It is slow and
// meant for people: `finderbot replay --explain`.
func (s *Set) Explain(msg *sdk.Message, account string, now time.Time) []Trace {
	if account == "" {
		account = msg.Account
	}
	e := newEvaluator()
	e.setEnv(s.env(msg, account, now))
	boxed := e.boxedEnv()
	e.probe.fill(msg, account, "", e.env.Now)
	cands := map[int32]bool{}
	looked, _, always := s.index.candidates(nil, nil, &e.probe)
	for _, id := range append(looked, always...) {
		cands[id] = true
	}
	x := newExprConf(newConfig(s.opts.Location, DefaultMaxNodes, false))
	var out []Trace
	stoppedBy := ""
	for i, r := range s.message {
		t := Trace{Rule: r.Name, Candidate: cands[int32(i)]}
		if stoppedBy != "" {
			t.Skipped = stoppedBy
			out = append(out, t)
			continue
		}
		if !t.Candidate {
			t.Need = s.chosenNeed(int32(i), &e.probe)
		}
		ok, err := s.test(e, r, boxed)
		switch {
		case err != nil:
			t.Err = err
		case ok:
			t.Matched = true
			t.Actions, t.Err = s.render(e, nil, r)
			if r.Stop {
				stoppedBy = r.Name
			}
		default:
			t.Why = why(&x, r.When, boxed)
		}
		out = append(out, t)
	}
	return out
}

// chosenNeed describes the index requirements of rule id that the message
// fails.
func (s *Set) chosenNeed(id int32, p *probe) string {
	opts := s.index.plans[id].options
	var parts []string
	for _, n := range opts {
		if !n.holds(p) {
			parts = append(parts, n.String())
		}
	}
	return strings.Join(parts, "; ")
}

// why finds the first conjunct of a false condition that is false, and
// shows the values of its operands.
func why(x *exprConf, code string, env any) string {
	tree, err := parser.Parse(code)
	if err != nil {
		return "condition is false"
	}
	var conj []ast.Node
	var flatten func(n ast.Node)
	flatten = func(n ast.Node) {
		if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
			flatten(b.Left)
			flatten(b.Right)
			return
		}
		conj = append(conj, n)
	}
	flatten(tree.Node)
	e := newEvaluator()
	for _, c := range conj {
		v, err := evalNode(x, e, c, env)
		if err != nil {
			return fmt.Sprintf("%s failed: %v", c, err)
		}
		if b, ok := v.(bool); ok && b {
			continue
		}
		var seen []string
		for _, op := range operands(c) {
			if isLiteral(op) {
				continue
			}
			ov, err := evalNode(x, e, op, env)
			if err != nil {
				seen = append(seen, fmt.Sprintf("%s failed: %v", op, err))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s = %s", op, show(ov)))
		}
		if len(seen) == 0 {
			return fmt.Sprintf("%s is false", c)
		}
		return fmt.Sprintf("%s is false: %s", c, strings.Join(seen, ", "))
	}
	return "condition is false"
}

func operands(n ast.Node) []ast.Node {
	switch n := n.(type) {
	case *ast.BinaryNode:
		if n.Operator == "||" || n.Operator == "or" {
			return append(operands(n.Left), operands(n.Right)...)
		}
		return []ast.Node{n.Left, n.Right}
	case *ast.UnaryNode:
		return []ast.Node{n.Node}
	case *ast.CallNode:
		return n.Arguments
	case *ast.BuiltinNode:
		return n.Arguments
	}
	return nil
}

func isLiteral(n ast.Node) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ArrayNode:
		return true
	}
	return false
}

func evalNode(x *exprConf, e *evaluator, n ast.Node, env any) (any, error) {
	c, err := x.compile(n.String(), false)
	if err != nil {
		return nil, err
	}
	return e.vm.Run(c.program, env)
}

// show renders a value briefly.
func show(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = quote(x)
	case time.Time:
		s = x.Format(time.RFC3339)
	default:
		s = fmt.Sprintf("%v", v)
	}
	if utf8.RuneCountInString(s) > 80 {
		r := []rune(s)
		s = string(r[:77]) + "…"
	}
	return s
}
