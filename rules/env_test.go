package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/finderbot/finderbot/sdk"
)

// helperCalls holds, for every helper, a correct call with what it renders,
// the same call with a misspelt field, and a call with an argument of the
// wrong type, each bad call with the text the problem's caret must point
// at (typo, bad).
var helperCalls = map[string]struct {
	ok, want       string
	misspelt, typo string
	wrongType, bad string
}{
	"hour":       {"hour(msg.Time)", "9", "hour(msg.Tme)", "Tme", "hour(msg.Text)", "Text"},
	"hour()":     {"hour() + 0", "10", "hour() + len(msg.Txt)", "Txt", `hour("9")`, `"9"`},
	"minute":     {"minute(msg.Time)", "30", "minute(msg.Tme)", "Tme", "minute(msg.Seq)", "Seq"},
	"weekday":    {"weekday(msg.Time)", "5", "weekday(msg.Tme)", "Tme", `weekday("monday")`, `"monday"`},
	"clock":      {"clock(msg.Time)", "09:30", "clock(msg.Tme)", "Tme", "clock(msg.ID)", "ID"},
	"between":    {`between(msg.Time, "09:00", "10:00")`, "true", `between(msg.Tme, "09:00", "10:00")`, "Tme", `between(msg.Time, msg.Seq, "10:00")`, "Seq"},
	"between()":  {`between("09:00", "21:00")`, "true", `between("09:00", msg.Txt)`, "Txt", `between("09:00", hour())`, "hour()"},
	"concat":     {`concat(msg.Text, "!")`, "价格, a-b!", `concat(msg.Txt, "!")`, "Txt", `concat(msg.Text, msg.Seq)`, "Seq"},
	"+":          {`msg.Text + "!"`, "价格, a-b!", `msg.Text + msg.Txt`, "Txt", `msg.Text + msg.Seq`, "+ msg.Seq"},
	"repeat":     {`repeat(msg.Text, 2)`, "价格, a-b价格, a-b", `repeat(msg.Txt, 2)`, "Txt", `repeat(msg.Text, "2")`, `"2"`},
	"replace":    {`replace(msg.Text, "a", "A")`, "价格, A-b", `replace(msg.Txt, "a", "A")`, "Txt", `replace(msg.Text, 1, "A")`, "1"},
	"join":       {`join(split(msg.Text, "-"), "+")`, "价格, a+b", `join(split(msg.Text, "-"), msg.Txt)`, "Txt", `join(msg.Text, "+")`, "Text"},
	"split":      {`split(msg.Text, ", ")[1]`, "a-b", `split(msg.Txt, ", ")[1]`, "Txt", `split(msg.Text, msg.Seq)[1]`, "Seq"},
	"splitAfter": {`splitAfter(msg.Text, ", ")[0]`, "价格, ", `splitAfter(msg.Txt, ", ")[0]`, "Txt", `splitAfter(msg.Text, msg.Time)[0]`, "Time"},
	"containsAny": {`containsAny(msg.Text, "价格", "多少钱")`, "true", `containsAny(msg.Txt, "价格", "多少钱")`, "Txt",
		`containsAny(msg.Text, "价格", msg.Seq)`, "Seq"},
	// The first problem is the one shown: the misspelt field, not the
	// type its call would have had.
	"containsAny(containsAny)": {`containsAny(msg.Text, "x", string(containsAny(msg.Text, "a")))`, "false",
		`containsAny(msg.Text, "x", containsAny(msg.Txt, "a"))`, "Txt", `containsAny(msg.Text, "x", containsAny(msg.Text, "a"))`, `containsAny(msg.Text, "a")`},
	// add is + of values whose types are known only at run time: it takes
	// any two values, so only its arguments' fields can be checked.
	"add": {"add(msg.Seq, 1)", "8", "add(msg.Sq, 1)", "Sq", "", ""},
}

// helperPlaces are the places an expression X can stand in a rule: a
// condition, an argument of another helper, the body of a closure (where
// msg is #), a template, an argument inside a template and an event rule
// (where msg is event.Message). Block scalars keep X free of YAML quoting.
var helperPlaces = map[string]string{
	"condition":         "when: |-\n      string(X) != \"\" && !msg.FromSelf\n    actions: [{reply: ok}]",
	"argument":          "when: |-\n      containsAny(string(X), \"x\") || true\n    actions: [{reply: ok}]",
	"closure":           "when: |-\n      any([msg], {string(X) != \"\"})\n    actions: [{reply: ok}]",
	"template":          "actions:\n      - reply: |-\n          <{{ X }}>",
	"template argument": "actions:\n      - send:\n          to: ops\n          text: |-\n            <{{ concat(string(X), '') }}>",
	"event":             "on: event\n    when: |-\n      string(X) != \"\"\n    actions: [{send: {to: ops, text: ok}}]",
}

// helperMsg is what msg is written as at each place.
var helperMsg = map[string]string{"closure": "#.", "event": "event.Message."}

// placed is a one-rule file with x at place, and the line x is on.
func placed(place, x string) (string, int) {
	if m, ok := helperMsg[place]; ok {
		x = strings.ReplaceAll(x, "msg.", m)
	}
	src := "rules:\n  - name: r\n    " + strings.Replace(helperPlaces[place], "X", x, 1) + "\n"
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, x) {
			return src, i + 1
		}
	}
	return src, 0
}

// TestHelperSignatures proves every helper's arguments are type-checked at
// load wherever the call stands: a misspelt field or an argument of the
// wrong type is a problem at its line and column, and a correct call
// compiles and renders as before.
func TestHelperSignatures(t *testing.T) {
	t.Parallel()
	msg := &sdk.Message{ID: 1, Seq: 7, Type: sdk.TypeText, Text: "价格, a-b", Session: "s",
		Time: time.Date(2026, 11, 20, 9, 30, 0, 0, shanghai)}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	for name, h := range helperCalls {
		for place := range helperPlaces {
			t.Run(name+"/"+place, func(t *testing.T) {
				t.Parallel()
				src, _ := placed(place, h.ok)
				set, err := Compile(Options{}, Source{Name: "h.yaml", Data: []byte(src)})
				if err != nil {
					t.Fatalf("correct call refused: %v\n%s", err, src)
				}
				if place == "template" {
					got := rulesOf(set.Match(nil, msg, "", now, nil))
					if want := "r:<" + h.want + ">"; got != want {
						t.Errorf("%s rendered %q, want %q", h.ok, got, want)
					}
				}
				wrongMsg := "cannot use"
				if name == "+" {
					wrongMsg = "mismatched types"
				}
				for _, bad := range []struct{ x, at, msg string }{
					{h.misspelt, h.typo, "has no field " + h.typo},
					{h.wrongType, h.bad, wrongMsg},
				} {
					if bad.x == "" {
						continue
					}
					src, line := placed(place, bad.x)
					at := bad.at
					if m, ok := helperMsg[place]; ok {
						at = strings.ReplaceAll(at, "msg.", m)
					}
					lines, col := strings.Split(src, "\n"), -1
					if line > 0 {
						col = strings.Index(lines[line-1], at)
					}
					if col < 0 {
						t.Fatalf("%q or %q is not in\n%s", bad.x, at, src)
					}
					col = utf8.RuneCountInString(lines[line-1][:col]) + 1
					p := onlyProblem(t, src)
					if p.Line != line || p.Col != col || !strings.Contains(p.Msg, bad.msg) {
						t.Errorf("%s: got %d:%d %q, want %d:%d with %q\n%s", bad.x, p.Line, p.Col, p.Msg, line, col, bad.msg, p)
					}
				}
			})
		}
	}
}

// onlyProblem compiles src and returns its one load problem.
func onlyProblem(t *testing.T, src string) Problem {
	t.Helper()
	_, err := Compile(Options{}, Source{Name: "h.yaml", Data: []byte(src)})
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 {
		t.Fatalf("want one problem, got %v\n%s", err, src)
	}
	return le.Problems[0]
}

func ExampleCompile_helperArgument() {
	_, err := Compile(Options{}, Source{Name: "faq.yaml", Data: []byte(`
rules:
  - name: price
    when: containsAny(msg.Txt, "价格", "多少钱")
    actions: [{reply: 以橱窗为准}]
`)})
	fmt.Println(err)
	// Output:
	// rules: faq.yaml:4:27: rule "price": when: type sdk.Message has no field Txt
	//         when: containsAny(msg.Txt, "价格", "多少钱")
	//                               ^
}
