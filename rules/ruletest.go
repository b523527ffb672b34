package rules

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/finderbot/finderbot/sdk"
)

// TestReport is the outcome of RunTests.
type TestReport struct {
	// Passed and Failed count test cases.
	Passed, Failed int
}

// RunTests runs the rule tests in paths (*_test.yaml files, or directories
// searched recursively for them) and writes a line per test file, and a
// readable diff per failing test case, to w. A test file that cannot be read
// or whose rules do not load counts as one failure. The error is for paths
// that hold no test files at all.
func RunTests(w io.Writer, opts Options, paths ...string) (TestReport, error) {
	files, err := testFiles(paths)
	if err != nil {
		return TestReport{}, err
	}
	var rep TestReport
	for _, f := range files {
		runTestFile(w, opts, f, &rep)
	}
	return rep, nil
}

func testFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	out, err := findFiles(paths, isTestFile, "")
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("rules: no rule tests (*_test.yaml) in %s", strings.Join(paths, ", "))
	}
	return out, nil
}

func isTestFile(path string) bool {
	return strings.HasSuffix(path, "_test.yaml") || strings.HasSuffix(path, "_test.yml")
}

// testFile is a decoded *_test.yaml file.
type testFile struct {
	ruleFiles []string
	account   string
	tests     []testCase
}

type testCase struct {
	name     string
	line     int
	at       time.Time
	messages []testMessage
	events   []testEvent
	advance  time.Duration
	expect   []Action
}

type testMessage struct {
	after  time.Duration
	msg    sdk.Message
	paused bool
}

type testEvent struct {
	after time.Duration
	ev    Event
}

func runTestFile(w io.Writer, opts Options, path string, rep *TestReport) {
	fail := func(err error) {
		rep.Failed++
		fmt.Fprintf(w, "FAIL %s\n%s\n", path, indent(err.Error()))
	}
	data, err := sdk.ReadFile(path, sdk.MaxFileSize)
	if err != nil {
		fail(err)
		return
	}
	if opts.Location == nil {
		opts.Location = ShanghaiLocation()
	}
	tf, err := decodeTestFile(path, data, opts.Location, filepath.Glob)
	if err != nil {
		fail(err)
		return
	}
	var mu sync.Mutex
	var failures []Failure
	opts.OnFailure = func(f Failure) {
		mu.Lock()
		failures = append(failures, f)
		mu.Unlock()
	}
	set, err := Load(opts, tf.ruleFiles...)
	if err != nil {
		fail(err)
		return
	}
	failed := 0
	for _, tc := range tf.tests {
		failures = failures[:0]
		got := runCase(set, tf.account, &tc)
		var problems []string
		for _, f := range failures {
			problems = append(problems, f.Err.Error())
		}
		want := actionLines(tc.expect)
		have := actionLines(got)
		if slices.Equal(want, have) && len(problems) == 0 {
			continue
		}
		if failed == 0 {
			fmt.Fprintf(w, "FAIL %s\n", path)
		}
		failed++
		fmt.Fprintf(w, "  --- %s (%s:%d)\n", tc.name, path, tc.line)
		for _, p := range problems {
			fmt.Fprintf(w, "%s\n", indent(indent(p)))
		}
		if !slices.Equal(want, have) {
			fmt.Fprintf(w, "      actions differ (- expected, + actual):\n")
			for _, l := range diffLines(want, have) {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	rep.Failed += failed
	rep.Passed += len(tf.tests) - failed
	if failed == 0 {
		fmt.Fprintf(w, "ok   %s (%d tests)\n", path, len(tf.tests))
	}
}

// runCase plays a test case against the set and returns every action, in
// the order produced.
func runCase(set *Set, account string, tc *testCase) []Action {
	cd := NewCooldowns(0)
	clock := tc.at
	var out []Action
	for _, m := range tc.messages {
		clock = clock.Add(m.after)
		msg := m.msg
		msg.Time = clock
		if msg.Account == "" {
			msg.Account = account
		}
		n := len(out)
		out = set.MatchIn(out, &msg, Conversation{Paused: m.paused}, account, clock, cd)
		if m.paused {
			// The daemon withholds what a paused conversation would get.
			out = append(out[:n], slices.DeleteFunc(out[n:], func(a Action) bool { return !PausedKeeps(a) })...)
		}
	}
	for _, e := range tc.events {
		clock = clock.Add(e.after)
		ev := e.ev
		if ev.Account == "" {
			ev.Account = account
		}
		out = set.MatchEvent(out, &ev, clock, cd)
	}
	if tc.advance > 0 {
		out = fireBetween(set, out, account, clock, clock.Add(tc.advance))
	}
	return out
}

// fireBetween fires every cron rule due in (from, to], in time order, ties in
// rule order.
func fireBetween(set *Set, dst []Action, account string, from, to time.Time) []Action {
	type due struct {
		at   time.Time
		rule int
	}
	var all []due
	for i, c := range set.Crons() {
		for t := c.Schedule.Next(from); !t.IsZero() && !t.After(to); t = c.Schedule.Next(t) {
			all = append(all, due{t, i})
			if len(all) > 10_000 {
				break
			}
		}
	}
	slices.SortStableFunc(all, func(a, b due) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.rule - b.rule
	})
	for _, d := range all {
		dst, _ = set.Fire(dst, set.Crons()[d.rule].Name, account, d.at)
	}
	return dst
}

func actionLines(as []Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// diffLines is a line diff by longest common subsequence, marking lines
// only expected with "-" and lines only produced with "+".
func diffLines(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, "  "+a[i])
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+a[i])
			i++
		default:
			out = append(out, "+ "+b[j])
			j++
		}
	}
	if n == 0 && m == 0 {
		out = append(out, "  (none)")
	}
	return out
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// decodeTestFile decodes a *_test.yaml file strictly.
// decodeTestFile decodes a test file; glob finds the rule files it names.
func decodeTestFile(path string, data []byte, loc *time.Location, glob func(string) ([]string, error)) (*testFile, error) {
	var problems []Problem
	s := newSource(path, data, &problems)
	tf := &testFile{account: "test"}
	root := s.parse(data)
	if root != nil {
		m := s.mapping(root, "", "test file", "rule_files", "account", "tests")
		dir := filepath.Dir(path)
		if f, ok := m["rule_files"]; ok {
			for _, n := range s.list(f, "", "rule_files") {
				p, ok := s.str(field{value: n}, "", "rule_files")
				if !ok {
					continue
				}
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				matches, err := glob(p)
				if err != nil || len(matches) == 0 {
					s.errorAt(n, "", "rule_files: %s: no such file", p)
					continue
				}
				tf.ruleFiles = append(tf.ruleFiles, matches...)
			}
		} else if m != nil {
			s.errorAt(root, "", "test file: `rule_files` is missing")
		}
		if f, ok := m["account"]; ok {
			tf.account, _ = s.str(f, "", "account")
		}
		if f, ok := m["tests"]; ok {
			for _, n := range s.list(f, "", "tests") {
				if tc, ok := decodeCase(s, n, loc); ok {
					tf.tests = append(tf.tests, tc)
				}
			}
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &LoadError{Problems: problems}
	}
	if len(tf.tests) == 0 {
		return nil, errors.New("rules: " + path + ": no tests")
	}
	return tf, nil
}

func decodeCase(s *source, n *yaml.Node, loc *time.Location) (testCase, bool) {
	// Without `at`, the clock starts on a Monday at noon in the rule set's
	// zone, inside business hours, so that tests stay deterministic.
	tc := testCase{line: n.Line, at: time.Date(2026, 1, 5, 12, 0, 0, 0, loc)}
	before := len(*s.problems)
	m := s.mapping(n, "", "test", "name", "at", "messages", "events", "advance", "expect")
	if m == nil {
		return tc, false
	}
	if f, ok := m["name"]; ok {
		tc.name, _ = s.str(f, "", "name")
	} else {
		s.errorAt(n, "", "test: `name` is missing")
	}
	what := "test " + quote(tc.name)
	if f, ok := m["at"]; ok {
		if v, ok := s.str(f, "", what+": at"); ok {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.errorAt(f.value, "", "%s: at: want a time such as 2026-11-20T09:00:00+08:00, got %q", what, v)
			}
			tc.at = t
		}
	}
	if f, ok := m["advance"]; ok {
		tc.advance, _ = s.duration(f, "", what+": advance")
	}
	if f, ok := m["messages"]; ok {
		for _, mn := range s.list(f, "", what+": messages") {
			tc.messages = append(tc.messages, decodeMessage(s, mn, what))
		}
	}
	if f, ok := m["events"]; ok {
		for _, en := range s.list(f, "", what+": events") {
			tc.events = append(tc.events, decodeEvent(s, en, what))
		}
	}
	if f, ok := m["expect"]; ok {
		for _, an := range s.list(f, "", what+": expect") {
			tc.expect = append(tc.expect, decodeExpect(s, an, what))
		}
	} else {
		s.errorAt(n, "", "%s: `expect` is missing (write `expect: []` for no actions)", what)
	}
	return tc, len(*s.problems) == before
}

func decodeMessage(s *source, n *yaml.Node, what string) testMessage {
	what += ": message"
	var tm testMessage
	tm.msg.Type = sdk.TypeText
	keys := []string{"id", "type", "text", "content", "from", "to", "session", "from_self", "account", "sys", "after", "paused"}
	m := s.mapping(n, "", what, keys...)
	for _, k := range keys {
		f, ok := m[k]
		if !ok {
			continue
		}
		switch k {
		case "id":
			v, _ := s.integer(f, "", what+": id")
			tm.msg.ID = uint64(v)
		case "type":
			tm.msg.Type, _ = s.str(f, "", what+": type")
		case "text":
			tm.msg.Text, _ = s.str(f, "", what+": text")
		case "content":
			tm.msg.Content, _ = s.str(f, "", what+": content")
		case "from":
			tm.msg.From, _ = s.str(f, "", what+": from")
		case "to":
			tm.msg.To, _ = s.str(f, "", what+": to")
		case "session":
			tm.msg.Session, _ = s.str(f, "", what+": session")
		case "from_self":
			tm.msg.FromSelf, _ = s.boolean(f, "", what+": from_self")
		case "account":
			tm.msg.Account, _ = s.str(f, "", what+": account")
		case "after":
			tm.after, _ = s.duration(f, "", what+": after")
		case "paused":
			tm.paused, _ = s.boolean(f, "", what+": paused")
		case "sys":
			sm := s.mapping(f.value, "", what+": sys", "type", "fields")
			tm.msg.Sys = &sdk.SysMsg{}
			if tf, ok := sm["type"]; ok {
				tm.msg.Sys.Type, _ = s.str(tf, "", what+": sys.type")
			}
			if ff, ok := sm["fields"]; ok {
				tm.msg.Sys.Fields = s.stringMap(ff, what+": sys.fields")
			}
		}
	}
	if tm.msg.Type == sdk.TypeText && tm.msg.Content == "" {
		tm.msg.Content = tm.msg.Text
	}
	return tm
}

func decodeEvent(s *source, n *yaml.Node, what string) testEvent {
	what += ": event"
	var te testEvent
	keys := []string{"type", "session", "account", "fields", "after"}
	m := s.mapping(n, "", what, keys...)
	if _, ok := m["type"]; !ok && m != nil {
		s.errorAt(n, "", "%s: `type` is missing", what)
	}
	for _, k := range keys {
		f, ok := m[k]
		if !ok {
			continue
		}
		switch k {
		case "type":
			te.ev.Type, _ = s.str(f, "", what+": type")
		case "session":
			te.ev.Session, _ = s.str(f, "", what+": session")
		case "account":
			te.ev.Account, _ = s.str(f, "", what+": account")
		case "fields":
			te.ev.Fields = s.stringMap(f, what+": fields")
		case "after":
			te.after, _ = s.duration(f, "", what+": after")
		}
	}
	return te
}

func decodeExpect(s *source, n *yaml.Node, what string) Action {
	what += ": expect"
	var a Action
	m := s.mapping(n, "", what, "rule", "reply", "reply_image", "send", "plugin", "with")
	if f, ok := m["rule"]; ok {
		a.Rule, _ = s.str(f, "", what+": rule")
	} else if m != nil {
		s.errorAt(n, "", "%s: `rule` is missing", what)
	}
	switch {
	case has(m, "reply"):
		a.Kind = KindReply
		a.Text, _ = s.str(m["reply"], "", what+": reply")
	case has(m, "reply_image"):
		a.Kind = KindReplyImage
		a.Image, _ = s.str(m["reply_image"], "", what+": reply_image")
	case has(m, "send"):
		a.Kind = KindSend
		sm := s.mapping(m["send"].value, "", what+": send", "to", "text")
		if f, ok := sm["to"]; ok {
			a.To, _ = s.str(f, "", what+": send.to")
		}
		if f, ok := sm["text"]; ok {
			a.Text, _ = s.str(f, "", what+": send.text")
		}
	case has(m, "plugin"):
		a.Kind = KindPlugin
		name, _ := s.str(m["plugin"], "", what+": plugin")
		a.Plugin, a.Name, _ = strings.Cut(name, ".")
		if f, ok := m["with"]; ok {
			a.Params = s.stringMap(f, what+": with")
		}
	default:
		if m != nil {
			s.errorAt(n, "", "%s: want one of reply, reply_image, send or plugin", what)
		}
	}
	return a
}

func has(m map[string]field, k string) bool {
	_, ok := m[k]
	return ok
}

func (s *source) stringMap(f field, what string) map[string]string {
	n := resolve(f.value)
	if n.Kind != yaml.MappingNode {
		s.errorAt(n, "", "%s: want a mapping, got %s", what, kindName(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		v, _ := s.str(field{key: n.Content[i], value: n.Content[i+1]}, "", what+"."+n.Content[i].Value)
		out[n.Content[i].Value] = v
	}
	return out
}
