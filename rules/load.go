package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/finderbot/finderbot/rules/yamlpos"
	"github.com/finderbot/finderbot/sdk"
	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Options configure Load and Compile. The zero value is ready to use.
type Options struct {
	// Location is the time zone of cron schedules and of the time helpers
	// (hour(), between(), ...). Nil means Asia/Shanghai.
	Location *time.Location
	// Plugins lists the plugin actions that exist, as "plugin.action"
	// names. When it is non-nil, a rule calling any other is refused.
	Plugins []string
	// PluginProblem, when set, is asked about every plugin action a rule
	// calls; an answer other than "" is reported as a problem at the
	// action, as what keeps it from being called.
	PluginProblem func(plugin, action string) string
	// MaxExprLen bounds an expression's length in bytes; 0 means
	// DefaultMaxExprLen.
	MaxExprLen int
	// MaxOutput bounds a rendered action string in bytes; 0 means
	// DefaultMaxOutput.
	MaxOutput int
	// OnFailure, when set, is called for every rule whose evaluation
	// failed. The failing rule does not match; the other rules go on. It
	// may be called from many goroutines at once.
	OnFailure func(Failure)
	// Stats, when set, counts each rule's matches and failures; give
	// the same one to every reload so that the counts run on.
	Stats *Stats

	// legacyIndex indexes only msg.Text and msg.Type and evaluates every
	// candidate by the VM, as the index did before guards, so that
	// benchmarks measure the two side by side.
	legacyIndex bool
}

// Failure is a rule whose condition or template could not be evaluated.
type Failure struct {
	// Rule is the failing rule's name.
	Rule string
	// Err says what went wrong.
	Err error
}

// Source is a rule file's name and content, for Compile.
type Source struct {
	// Name is shown in problems, as the file's path.
	Name string
	// Data is the YAML text.
	Data []byte
}

// Trigger says what makes a rule run.
type Trigger string

// The triggers a rule's `on` may name.
const (
	OnMessage Trigger = "message"
	OnCron    Trigger = "cron"
	OnEvent   Trigger = "event"
)

// ShanghaiLocation returns the default rule time zone, Asia/Shanghai (UTC+8,
// no daylight saving), falling back to a fixed zone when the system has no
// zone database.
func ShanghaiLocation() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("Asia/Shanghai", 8*3600)
}

// Load reads the rule files at paths (files, or directories searched
// recursively for *.yaml and *.yml files that are not *_test.yaml) and
// compiles them into a Set. All problems are returned together as a
// *LoadError. A file that cannot be read — a named pipe, a device or a
// directory named *.yaml, or one larger than sdk.MaxFileSize — is refused,
// every such file named, before anything is compiled.
func Load(opts Options, paths ...string) (*Set, error) {
	files, err := ruleFiles(paths)
	if err != nil {
		return nil, err
	}
	srcs := make([]Source, 0, len(files))
	var unread []error // every file that cannot be read, not just the first
	for _, f := range files {
		data, err := sdk.ReadFile(f, sdk.MaxFileSize)
		if err != nil {
			unread = append(unread, fmt.Errorf("rules: %w", err))
			continue
		}
		srcs = append(srcs, Source{Name: f, Data: data})
	}
	if len(unread) > 0 {
		return nil, errors.Join(unread...)
	}
	return Compile(opts, srcs...)
}

// ruleFiles expands paths into rule files, in a stable order.
func ruleFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("rules: no rule files given")
	}
	return findFiles(paths, isRuleFile, "no rule files (*.yaml) in this directory")
}

// findFiles expands paths: files stand for themselves, directories for the
// files below them that match, sorted, each directory's own. A directory
// without any is an error when none says so; with none="" it is not.
func findFiles(paths []string, match func(string) bool, none string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if skipDir(p, path, d) {
				return filepath.SkipDir
			}
			if !d.IsDir() && match(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if len(found) == 0 && none != "" {
			return nil, fmt.Errorf("rules: %s: %s", p, none)
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}

// skipDir leaves out, below the directory given, hidden directories and
// testdata directories, as the go tool does.
func skipDir(root, path string, d fs.DirEntry) bool {
	if !d.IsDir() || path == root {
		return false
	}
	name := d.Name()
	return name == "testdata" || (strings.HasPrefix(name, ".") && name != "." && name != "..")
}

func isRuleFile(path string) bool {
	ext := filepath.Ext(path)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(path, ext), "_test")
}

// Compile decodes and compiles rule files held in memory; see Load.
func Compile(opts Options, srcs ...Source) (*Set, error) {
	if opts.Location == nil {
		opts.Location = ShanghaiLocation()
	}
	if opts.MaxExprLen <= 0 {
		opts.MaxExprLen = DefaultMaxExprLen
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	c := newCompiler(opts)
	for _, src := range srcs {
		c.file(src)
	}
	c.lint()
	if len(c.problems) > 0 {
		// Report in file order, whatever order the checks ran in.
		order := make(map[string]int, len(srcs))
		for i, src := range srcs {
			order[src.Name] = i
		}
		slices.SortStableFunc(c.problems, func(a, b Problem) int {
			if d := order[a.File] - order[b.File]; d != 0 {
				return d
			}
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		return nil, &LoadError{Problems: c.problems}
	}
	return c.set(), nil
}

// compiler turns decoded rules into a Set, collecting every problem.
type compiler struct {
	opts     Options
	problems []Problem
	warnings []Problem
	boolConf exprConf
	anyConf  exprConf
	rules    []*Rule
	byName   map[string]*Rule
	plugins  map[string]bool
}

func newCompiler(opts Options) *compiler {
	c := &compiler{
		opts:     opts,
		boolConf: newExprConf(newConfig(opts.Location, DefaultMaxNodes, true)),
		anyConf:  newExprConf(newConfig(opts.Location, DefaultMaxNodes, false)),
		byName:   make(map[string]*Rule),
	}
	if opts.Plugins != nil {
		c.plugins = make(map[string]bool, len(opts.Plugins))
		for _, p := range opts.Plugins {
			c.plugins[p] = true
		}
	}
	return c
}

var ruleKeys = []string{"name", "description", "priority", "stop", "on", "when", "schedule", "timezone", "cooldown", "actions", "disabled"}

func (c *compiler) file(src Source) {
	s := newSource(src.Name, src.Data, &c.problems)
	root := s.parse(src.Data)
	if root == nil {
		return
	}
	before := len(c.problems)
	top := s.mapping(root, "", "file", "rules")
	f, ok := top["rules"]
	if !ok {
		if top != nil && len(c.problems) == before {
			s.errorAt(root, "", "file: want a top-level `rules:` list")
		}
		return
	}
	for _, n := range s.list(f, "", "rules") {
		c.rule(s, n)
	}
}

func (c *compiler) rule(s *source, n *yaml.Node) {
	r := &Rule{File: s.name, Line: n.Line, Trigger: OnMessage}
	// The name comes first so that every other problem can name the rule.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				r.Name = n.Content[i+1].Value
			}
		}
	}
	m := s.mapping(n, r.Name, "rule", ruleKeys...)
	if m == nil {
		return
	}
	nameF, ok := m["name"]
	switch {
	case !ok:
		s.errorAt(n, "", "rule: `name` is missing")
	case !validName(r.Name):
		s.errorAt(nameF.value, "", "name %q: want letters, digits, '_', '-' or '.', without spaces", r.Name)
	default:
		if prev, dup := c.byName[r.Name]; dup {
			s.errorAt(nameF.value, r.Name, "duplicate rule name (first defined at %s:%d)", prev.File, prev.Line)
		} else {
			c.byName[r.Name] = r
		}
	}
	name := r.Name
	if f, ok := m["description"]; ok {
		r.Description, _ = s.str(f, name, "description")
	}
	if f, ok := m["priority"]; ok {
		r.Priority, _ = s.integer(f, name, "priority")
	}
	if f, ok := m["stop"]; ok {
		r.Stop, _ = s.boolean(f, name, "stop")
	}
	disabled := false
	if f, ok := m["disabled"]; ok {
		disabled, _ = s.boolean(f, name, "disabled")
	}
	if f, ok := m["on"]; ok {
		if v, ok := s.str(f, name, "on"); ok {
			switch Trigger(v) {
			case OnMessage, OnCron, OnEvent:
				r.Trigger = Trigger(v)
			default:
				s.errorAt(f.value, name, "on: unknown trigger %q (want message, cron or event)", v)
			}
		}
	}
	if f, ok := m["cooldown"]; ok {
		if r.Trigger == OnCron {
			s.errorAt(f.key, name, "cooldown: cron rules run on their schedule and take no cooldown")
		} else {
			r.Cooldown, _ = s.duration(f, name, "cooldown")
		}
	}
	loc := c.opts.Location
	if f, ok := m["timezone"]; ok {
		if r.Trigger != OnCron {
			s.errorAt(f.key, name, "timezone: only cron rules take a time zone; the helpers use the rule set's")
		} else if v, ok := s.str(f, name, "timezone"); ok {
			l, err := time.LoadLocation(v)
			if err != nil {
				s.errorAt(f.value, name, "timezone: unknown time zone %q", v)
			} else {
				loc = l
			}
		}
	}
	if f, ok := m["schedule"]; ok {
		if r.Trigger != OnCron {
			s.errorAt(f.key, name, "schedule: only `on: cron` rules have a schedule")
		} else if v, ok := s.str(f, name, "schedule"); ok {
			r.Spec = v
			sched, err := parseSchedule(v, loc)
			if err != nil {
				s.errorAt(f.value, name, "schedule: %v", err)
			}
			r.Schedule = sched
			r.Location = loc
		}
	} else if r.Trigger == OnCron {
		s.errorAt(n, name, "cron rule has no `schedule`")
	}
	r.cond = c.condition(s, m, r)
	if f, ok := m["actions"]; ok {
		for _, an := range s.list(f, name, "actions") {
			if a, ok := c.action(s, an, r); ok {
				r.actions = append(r.actions, a)
			}
		}
	}
	if len(r.actions) == 0 {
		if _, ok := m["actions"]; !ok {
			s.errorAt(n, name, "rule has no `actions`")
		}
	}
	if r.Trigger == OnMessage && !strings.Contains(r.When, "FromSelf") && answers(r) {
		c.warnings = append(c.warnings, Problem{File: r.File, Line: r.Line, Rule: r.Name,
			Msg: "answers messages without testing msg.FromSelf: it will also answer the account's own messages, its replies included; add `&& !msg.FromSelf`"})
	}
	if !disabled {
		c.rules = append(c.rules, r)
	}
}

// answers reports whether a rule sends any text.
func answers(r *Rule) bool {
	for _, a := range r.actions {
		if a.kind == KindReply || a.kind == KindSend {
			return true
		}
	}
	return false
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func parseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		spec = "CRON_TZ=" + loc.String() + " " + spec
	}
	return cronParser.Parse(spec)
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// condition compiles a rule's `when`; a rule without one always matches.
func (c *compiler) condition(s *source, m map[string]field, r *Rule) *cond {
	f, ok := m["when"]
	if !ok {
		return nil
	}
	code, ok := s.str(f, r.Name, "when")
	if !ok {
		return nil
	}
	code = strings.TrimSpace(code)
	if len(code) > c.opts.MaxExprLen {
		s.errorAt(f.value, r.Name, "when: expression is %d bytes, more than the limit of %d", len(code), c.opts.MaxExprLen)
		return nil
	}
	if code == "" {
		s.errorAt(f.value, r.Name, "when: empty condition (leave `when` out to match every message)")
		return nil
	}
	cd, err := c.boolConf.compile(code, true)
	if err != nil {
		var pe *positionedError
		if errors.As(err, &pe) && strings.Contains(pe.msg, "is not callable") && strings.Contains(code, "now(") {
			pe.msg += " (now is the evaluation time, a value: write now.Hour(), not now().Hour())"
		}
		c.exprError(s, f.value, r.Name, "when", err)
		return nil
	}
	r.When = code
	return cd
}

// exprError records an expr compile error at its position in the file.
func (c *compiler) exprError(s *source, n *yaml.Node, rule, what string, err error) {
	var pe *positionedError
	if errors.As(err, &pe) {
		line, col := s.textPos(n, pe.line+pe.lineOffset, pe.col+pe.colOffset)
		s.errorAtPos(line, col, rule, what+": "+pe.msg)
		return
	}
	s.errorAt(n, rule, "%s: %v", what, err)
}

var actionKeys = []string{"reply", "send", "plugin", "with"}

func (c *compiler) action(s *source, n *yaml.Node, r *Rule) (action, bool) {
	m := s.mapping(n, r.Name, "action", actionKeys...)
	if m == nil {
		return action{}, false
	}
	var kinds []string
	for _, k := range []string{"reply", "send", "plugin"} {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		s.errorAt(n, r.Name, "action: want exactly one of reply, send or plugin, got %d", len(kinds))
		return action{}, false
	}
	a := action{kind: kinds[0]}
	ok := true
	if f, has := m["with"]; has && a.kind != "plugin" {
		s.errorAt(f.key, r.Name, "with: only plugin actions take parameters")
		ok = false
	}
	switch a.kind {
	case "reply":
		if r.Trigger != OnMessage {
			s.errorAt(m["reply"].key, r.Name, "reply: %s rules have no message to reply to; use send with `to`", r.Trigger)
			return a, false
		}
		a.text, ok = c.template(s, m["reply"], r.Name, "reply")
	case "send":
		sm := s.mapping(m["send"].value, r.Name, "send", "to", "text")
		if sm == nil {
			return a, false
		}
		for _, k := range []string{"to", "text"} {
			f, has := sm[k]
			if !has {
				s.errorAt(m["send"].value, r.Name, "send: `%s` is missing", k)
				ok = false
				continue
			}
			t, tok := c.template(s, f, r.Name, "send."+k)
			ok = ok && tok
			if k == "to" {
				a.to = t
			} else {
				a.text = t
			}
		}
	case "plugin":
		f := m["plugin"]
		name, sok := s.str(f, r.Name, "plugin")
		if !sok {
			return a, false
		}
		plugin, act, found := strings.Cut(name, ".")
		if !found || plugin == "" || act == "" {
			s.errorAt(f.value, r.Name, "plugin: %q: want <plugin>.<action>, such as crm.record", name)
			return a, false
		}
		if c.plugins != nil && !c.plugins[name] {
			s.errorAt(f.value, r.Name, "plugin: unknown plugin action %q%s", name, suggest(name, c.opts.Plugins))
			ok = false
		}
		if c.opts.PluginProblem != nil {
			if p := c.opts.PluginProblem(plugin, act); p != "" {
				s.errorAt(f.value, r.Name, "plugin: %s", p)
				ok = false
			}
		}
		a.plugin, a.name = plugin, act
		if wf, has := m["with"]; has {
			wn := resolve(wf.value)
			if wn.Kind != yaml.MappingNode {
				s.errorAt(wn, r.Name, "with: want a mapping of parameters, got %s", kindName(wn))
				return a, false
			}
			for i := 0; i+1 < len(wn.Content); i += 2 {
				k := wn.Content[i].Value
				t, tok := c.template(s, field{key: wn.Content[i], value: wn.Content[i+1]}, r.Name, "with."+k)
				ok = ok && tok
				a.params = append(a.params, param{key: k, value: t})
			}
			slices.SortFunc(a.params, func(x, y param) int { return strings.Compare(x.key, y.key) })
		}
	}
	return a, ok
}

// suggest names the closest known plugin action, if one is close.
func suggest(name string, known []string) string {
	best, bestD := "", 4
	for _, k := range known {
		if d := yamlpos.Distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		if len(known) == 0 {
			return " (no plugin actions are known)"
		}
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// lint finds rules that can never run: those after a stop rule that matches
// every input of the same trigger.
func (c *compiler) lint() {
	if len(c.problems) > 0 {
		return
	}
	sortRules(c.rules)
	shadow := map[Trigger]*Rule{}
	for _, r := range c.rules {
		if s := shadow[r.Trigger]; s != nil && r.Trigger != OnCron {
			c.problems = append(c.problems, Problem{File: r.File, Line: r.Line, Rule: r.Name,
				Msg: fmt.Sprintf("never runs: rule %q (%s:%d) has stop: true, matches every %s and runs first", s.Name, s.File, s.Line, r.Trigger)})
			continue
		}
		if r.Stop && r.Cooldown == 0 && r.cond.alwaysTrue() {
			shadow[r.Trigger] = r
		}
	}
}

// sortRules puts rules in evaluation order: higher priority first, ties in
// file order.
func sortRules(rs []*Rule) {
	slices.SortStableFunc(rs, func(a, b *Rule) int { return b.Priority - a.Priority })
}
