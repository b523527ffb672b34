package rules

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// evalOnce compiles a rule replying with tmpl when cond holds, matches one
// message and returns the reply text, or the evaluation failure.
func evalOnce(t *testing.T, cond, tmpl string) (string, error) {
	t.Helper()
	var mu sync.Mutex
	var failure error
	opts := Options{OnFailure: func(f Failure) { mu.Lock(); failure = f.Err; mu.Unlock() }}
	src := fmt.Sprintf("rules:\n  - name: r\n    when: %q\n    actions: [{reply: %q}]\n", cond, tmpl)
	set := mustCompile(t, opts, src)
	out := set.Match(nil, text("hello world"), "", time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai), nil)
	mu.Lock()
	defer mu.Unlock()
	if failure != nil {
		return "", failure
	}
	if len(out) != 1 {
		return "", nil
	}
	return out[0].Text, nil
}

func TestEvaluationBounds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cond, tmpl string
		want       string // the reply, or
		err        string // the failure
	}{
		"loops within the budget":  {cond: "all(1..100, all(1..100, # > 0))", tmpl: "{{ map(1..3, # * 2) }} {{ sum(1..100) }}", want: "[2 4 6] 5050"},
		"nested loops":             {cond: "let r = 1..1000; all(r, all(r, all(r, true)))", tmpl: "x", err: "costs more than the limit of 100000"},
		"huge range":               {cond: "len(1..100000000) > 0", tmpl: "x", err: "costs more than the limit of 100000"},
		"loop in a template":       {cond: "true", tmpl: "{{ count(1..50000, count(1..50000, true) > 0) }}", err: "costs more than the limit"},
		"string concatenation":     {cond: `msg.Text + "!" == "hello world!"`, tmpl: `{{ "a" + "b" + msg.Text }}`, want: "abhello world"},
		"doubling strings":         {cond: "true", tmpl: `{{ len(reduce(1..64, #acc + #acc, "x")) }}`, err: "more than the limit of 1048576"},
		"repeat":                   {cond: "true", tmpl: `{{ repeat("ab", 3) }}`, want: "ababab"},
		"repeat past the bound":    {cond: "true", tmpl: `{{ len(repeat(repeat("x", 1000000), 1000000)) }}`, err: "more than the limit of 1048576"},
		"replace":                  {cond: "true", tmpl: `{{ replace(msg.Text, "o", "0") }}`, want: "hell0 w0rld"},
		"replace past the bound":   {cond: "true", tmpl: `{{ replace(repeat("x", 1000000), "", "yyyy") }}`, err: "more than the limit"},
		"join":                     {cond: "true", tmpl: `{{ join(split(msg.Text, " "), "-") }} {{ join(["a", "b"]) }}`, want: "hello-world ab"},
		"join past the bound":      {cond: "true", tmpl: `{{ join(map(1..2000, repeat("x", 1000)), ",") }}`, err: "more than the limit of 1048576"},
		"split":                    {cond: "true", tmpl: `{{ split(msg.Text, "o") }} {{ splitAfter(msg.Text, " ", 1) }}`, want: "[hell  w rld] [hello world]"},
		"split past the bound":     {cond: "true", tmpl: `{{ len(split(repeat("x", 200000), "")) }}`, err: "split would make 200000 parts, more than the limit of 100000"},
		"template output bound":    {cond: "true", tmpl: `{{ repeat("x", 20000) }}`, err: "template renders more than 16384 bytes"},
		"template output in parts": {cond: "true", tmpl: strings.Repeat(`{{ repeat("x", 1000) }}`, 20), err: "template renders more than 16384 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := evalOnce(t, tc.cond, tc.tmpl)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
