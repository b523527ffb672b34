package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// FuzzCompile feeds arbitrary rule files to the loader: it must refuse or
// accept them, never panic, and every problem must carry the file name.
func FuzzCompile(f *testing.F) {
	paths, _ := filepath.Glob("testdata/errors/*.yaml")
	more, _ := filepath.Glob("../examples/rules/*.yaml")
	for _, p := range append(paths, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Compile(Options{}, Source{Name: "f.yaml", Data: data})
		if err != nil {
			if le, ok := err.(*LoadError); ok {
				for _, p := range le.Problems {
					if p.File != "f.yaml" || p.Line < 1 || p.Msg == "" {
						t.Fatalf("bad problem %+v", p)
					}
				}
			}
			return
		}
		m := text("哈喽")
		_ = set.Match(nil, m, "", fuzzTime, nil)
	})
}

var fuzzTime = mustTime("2026-11-20T09:00:00+08:00")

// fuzzRules is the rule set rule-test files are played against in
// FuzzDecodeTestFile: a message rule with a template, an event rule and a
// cron rule, so that every kind of step runs.
const fuzzRules = `
rules:
  - name: greet
    when: msg.Text contains "哈喽" && !msg.FromSelf
    cooldown: 30s
    actions: [{reply: "{{ hour() < 12 ? '早上好' : '你好' }} {{ msg.From }}"}]
  - name: alert
    on: event
    when: event.Type == "session.kicked"
    actions: [{send: {to: ops, text: "{{ event.Session }}"}}]
  - name: tick
    on: cron
    schedule: "*/30 * * * *"
    actions: [{send: {to: ops, text: "tick {{ clock() }}"}}]
`

// FuzzDecodeTestFile feeds arbitrary *_test.yaml files to the decoder and
// plays those that decode against a fixed rule set. A file is refused with
// problems that carry its name and a line, or decoded into tests that each
// have a line; playing them never panics.
func FuzzDecodeTestFile(f *testing.F) {
	paths, _ := filepath.Glob("../examples/rules/*_test.yaml")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("rule_files: [x.yaml]\ntests:\n  - name: t\n    advance: 100000h\n    events: [{type: session.kicked, session: s, fields: {a: b}}]\n    expect: []\n"))
	f.Add([]byte("rule_files: x.yaml\ntests: [{name: a, at: nope, expect: [{rule: r, plugin: p.q, with: {a: 1}}]}]\n"))
	set, err := Compile(Options{}, Source{Name: "fuzz.yaml", Data: []byte(fuzzRules)})
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "f_test.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := decodeTestFile(path, data, shanghai, func(p string) ([]string, error) {
			// Every rule file exists, and the file system is left alone.
			if _, err := filepath.Match(p, "x"); err != nil {
				return nil, err
			}
			return []string{p}, nil
		})
		if err != nil {
			if le, ok := err.(*LoadError); ok {
				for _, p := range le.Problems {
					if p.File != path || p.Line < 1 || p.Msg == "" {
						t.Fatalf("bad problem %+v", p)
					}
				}
			} else if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(tf.tests) == 0 {
			t.Fatal("decoded a file without tests")
		}
		for _, tc := range tf.tests {
			if tc.line < 1 {
				t.Fatalf("test %q without a line", tc.name)
			}
			got := runCase(set, tf.account, &tc)
			_ = diffLines(actionLines(tc.expect), actionLines(got))
		}
	})
}

// FuzzTemplate compiles arbitrary {{ expr }} templates and renders them
// against a message: a template is refused at load with a positioned
// problem, or renders within the output bound (or fails with an error),
// and never panics or runs away.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"account", "clock()", "hour() < 12 ? '早上好' : '你好'", "msg.From", "msg.Sys.Fields.live_id",
		"msg.Text", "msg.Time", "event.Fields.message ?? ''", "map(1..3, # * 2)", "join(split(msg.Text, ''), '-')",
		`reduce(1..64, #acc + #acc, "x")`, "let r = 1..1000; all(r, all(r, true))", `repeat(msg.Text, 3)`, `replace(msg.Text, "", "ab")`,
		"toJSON(msg)", "sortBy(split(msg.Text, ''), #)", "msg.Image.Attrs", "uniq(concat(1..10, 1..10))"} {
		f.Add(s, "哈喽 hello")
	}
	f.Fuzz(func(t *testing.T, code, msgText string) {
		if !utf8.ValidString(code) || !utf8.ValidString(msgText) || len(code) > 2*DefaultMaxExprLen {
			return
		}
		src, err := yaml.Marshal(map[string]any{"rules": []any{map[string]any{
			"name": "r", "actions": []any{map[string]any{"reply": "<{{ " + code + " }}>"}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		var failure error
		set, err := Compile(Options{OnFailure: func(f Failure) { failure = f.Err }}, Source{Name: "t.yaml", Data: src})
		if err != nil {
			le, ok := err.(*LoadError)
			if !ok {
				t.Fatalf("load error %T %v", err, err)
			}
			for _, p := range le.Problems {
				if p.File != "t.yaml" || p.Line < 1 || p.Msg == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		start := time.Now()
		out := set.Match(nil, text(msgText), "", fuzzTime, nil)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("rendering took %v", d)
		}
		switch {
		case failure != nil:
			if len(out) != 0 {
				t.Fatalf("failed rule answered: %+v", out)
			}
		case len(out) != 1:
			t.Fatalf("rule without a condition did not answer: %+v", out)
		case len(out[0].Text) > DefaultMaxOutput:
			t.Fatalf("rendered %d bytes past the bound", len(out[0].Text))
		case !strings.HasPrefix(out[0].Text, "<") || !strings.HasSuffix(out[0].Text, ">"):
			t.Fatalf("literal parts lost: %q", out[0].Text)
		}
	})
}

// FuzzIndex compiles an arbitrary condition and matches an arbitrary text,
// UTF-8 or not, with the index and without: both must give the same
// actions.
func FuzzIndex(f *testing.F) {
	for _, s := range [][2]string{
		{`containsAny(msg.Text, "价格", "多少钱") && !msg.FromSelf`, "这个多少钱？"},
		{"msg.Text matches `订单号?[:：]?\\s*\\d{6,}`", "订单号：202611201234"},
		{`msg.Text in ["哈喽", "你好"] || msg.Text startsWith "退"`, "退\x80"},
		// A regular expression reads a byte that is not UTF-8 as U+FFFD.
		{`msg.Text matches "\uFFFD"`, "\xff"},
		{`msg.Text matches "价\uFFFD格"`, "价\xff格"},
		{`msg.Text matches "(ab|\uFFFD)+$"`, "ab\xe5\x93"},
		{`msg.Text contains "\uFFFD" || msg.Text endsWith "\xef\xbf"`, "\xef\xbf"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, when, msgText string) {
		if !utf8.ValidString(when) || len(when) > DefaultMaxExprLen {
			return
		}
		src, err := yaml.Marshal(map[string]any{"rules": []any{map[string]any{
			"name": "r", "when": when, "actions": []any{map[string]any{"reply": "r"}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		set, err := Compile(Options{}, Source{Name: "i.yaml", Data: src})
		if err != nil {
			return
		}
		indexed, naive := indexedAndNaive(set, &evaluator{}, text(msgText), fuzzTime)
		if indexed != naive {
			t.Fatalf("when %q, text %q: indexed %q, naive %q", when, msgText, indexed, naive)
		}
	})
}
