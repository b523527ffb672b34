package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// cond is a compiled condition. Identical conditions share one cond.
type cond struct {
	program *vm.Program
	// guard is the condition as far as Go decides it without the VM; the
	// index reads its requirements off it. exact is set when the guard
	// decides the whole condition.
	guard *guard
	exact bool
	// always is set when the condition is the constant true.
	always bool
}

func (c *cond) alwaysTrue() bool { return c == nil || c.always }

// exprConf compiles expressions against one expr configuration, compiling
// each distinct expression once: rule sets repeat conditions such as
// `!msg.FromSelf` and template parts such as `msg.From` many times.
type exprConf struct {
	config *conf.Config
	cache  map[string]*cond
}

func newExprConf(c *conf.Config) exprConf {
	return exprConf{config: c, cache: make(map[string]*cond)}
}

// positionedError is an expr compile error with its position inside the
// expression (1-based), plus the offset of the expression inside its
// enclosing text.
type positionedError struct {
	msg                   string
	line, col             int
	lineOffset, colOffset int
}

func (e *positionedError) Error() string { return e.msg }

// compile parses, type-checks, optimises and compiles code. analyse asks for
// a condition's guard, which the index reads its constraints off.
func (x *exprConf) compile(code string, analyse bool) (*cond, error) {
	if c, ok := x.cache[code]; ok {
		return c, nil
	}
	tree, err := parseCheck(code, x.config)
	if err != nil {
		return nil, exprErr(err)
	}
	if n, err := firstBadClock(tree.Node); n != nil {
		return nil, exprErr((&file.Error{Location: n.Location(), Message: err.Error()}).Bind(tree.Source))
	}
	c := &cond{}
	if analyse {
		c.guard = lower(tree.Node)
		c.exact = c.guard.exact()
	}
	if err := optimizer.Optimize(&tree.Node, x.config); err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, exprErr(fe.Bind(tree.Source))
		}
		return nil, err
	}
	if b, ok := tree.Node.(*ast.BoolNode); ok && b.Value {
		c.always = true
	}
	chargeLoops(&tree.Node)
	p, err := exprcompiler.Compile(tree, x.config)
	if err != nil {
		return nil, exprErr(err)
	}
	c.program = p
	x.cache[code] = c
	return c, nil
}

// parseCheck parses and type-checks code, arguments of helper calls
// included. expr's checker type-checks between the patchers (nowPatcher,
// dynamicAdd, the + overload) and drops those checks' errors; its final
// check then trusts the type a call to a function kept from them and does
// not look at the call's arguments again. containsAny(msg.Txt, "x") and
// hour(msg.Tme) would pass, and containsAny(msg.Text, containsAny(msg.Txt))
// would be blamed on its bool rather than on Txt. So the types of calls are
// forgotten and the patched tree checked once more, whose first problem is
// the first in the expression.
func parseCheck(code string, c *conf.Config) (*parser.Tree, error) {
	tree, err := parser.ParseWithConfig(code, c)
	if err != nil {
		return nil, err
	}
	_, patchErr := new(checker.Checker).PatchAndCheck(tree, c)
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		if call, ok := (*n).(*ast.CallNode); ok {
			call.SetNature(nature.Nature{})
		}
	}))
	if _, err := checker.Check(tree, c); err != nil {
		return nil, err
	}
	if patchErr != nil {
		return nil, patchErr
	}
	return tree, nil
}

// chargeLoops makes every pass of a loop cost one unit of the VM's budget
// (see DefaultMaxCost): the body of each closure becomes `[nil]; body`, and
// building the one-element list is what expr counts. The VM counts the
// elements of lists and ranges an expression builds, but not passes of a
// loop, so without this `let r = 1..1000; all(r, all(r, all(r, true)))`
// would run a billion passes on a budget it never touches.
func chargeLoops(root *ast.Node) {
	ast.Walk(root, visitFunc(func(n *ast.Node) {
		cl, ok := (*n).(*ast.PredicateNode)
		if !ok {
			return
		}
		if seq, ok := cl.Node.(*ast.SequenceNode); ok && len(seq.Nodes) == 2 {
			if a, ok := seq.Nodes[0].(*ast.ArrayNode); ok && len(a.Nodes) == 1 {
				if _, ok := a.Nodes[0].(*ast.NilNode); ok {
					return // charged already (the tree is shared by the cache)
				}
			}
		}
		body := cl.Node
		charge := &ast.ArrayNode{Nodes: []ast.Node{&ast.NilNode{}}}
		seq := &ast.SequenceNode{Nodes: []ast.Node{charge, body}}
		seq.SetNature(*body.Nature())
		seq.SetLocation(body.Location())
		charge.SetLocation(body.Location())
		cl.Node = seq
	}))
}

func exprErr(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &positionedError{msg: strings.TrimSpace(fe.Message), line: max(fe.Line, 1), col: fe.Column + 1}
	}
	return err
}

// template is an action string with {{ expr }} parts. A string without any
// is stored as its literal and costs nothing to render.
type template struct {
	parts []part
	// literal is the whole text when there are no expressions.
	literal string
	static  bool
}

type part struct {
	lit     string
	program *vm.Program
}

// template compiles an action string.
func (c *compiler) template(s *source, f field, rule, what string) (template, bool) {
	text, ok := s.str(f, rule, what)
	if !ok {
		return template{}, false
	}
	if !strings.Contains(text, "{{") {
		if strings.Contains(text, "}}") {
			c.templateError(s, f.value, rule, what, text, strings.Index(text, "}}"), "`}}` without `{{`")
			return template{}, false
		}
		return template{literal: text, static: true}, true
	}
	var t template
	rest, off := text, 0
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if j := strings.Index(rest, "}}"); j >= 0 {
				c.templateError(s, f.value, rule, what, text, off+j, "`}}` without `{{`")
				return template{}, false
			}
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			c.templateError(s, f.value, rule, what, text, off+i, "`{{` is never closed with `}}`")
			return template{}, false
		}
		code := rest[i+2 : i+2+j]
		start := off + i + 2
		if strings.TrimSpace(code) == "" {
			c.templateError(s, f.value, rule, what, text, off+i, "empty `{{ }}`")
			return template{}, false
		}
		if len(code) > c.opts.MaxExprLen {
			c.templateError(s, f.value, rule, what, text, start, fmt.Sprintf("expression is %d bytes, more than the limit of %d", len(code), c.opts.MaxExprLen))
			return template{}, false
		}
		cd, err := c.anyConf.compile(code, false)
		if err != nil {
			var pe *positionedError
			if errors.As(err, &pe) {
				// Shift the position from the expression to the text.
				line, col := textLineCol(text, start)
				if pe.line == 1 {
					pe.colOffset = col - 1
				}
				pe.lineOffset = line - 1
			}
			c.exprError(s, f.value, rule, what, err)
			return template{}, false
		}
		t.parts = append(t.parts, part{program: cd.program})
		rest = rest[i+2+j+2:]
		off += i + 2 + j + 2
	}
	return t, true
}

// textLineCol turns a byte offset in text into a 1-based line and a 1-based
// character column.
func textLineCol(text string, off int) (int, int) {
	line, col := 1, 1
	for _, r := range text[:off] {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func (c *compiler) templateError(s *source, n *yaml.Node, rule, what, text string, off int, msg string) {
	line, col := textLineCol(text, off)
	fl, fc := s.textPos(n, line, col)
	s.errorAtPos(fl, fc, rule, what+": "+msg)
}
