package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCheckExplainIndex(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		want []string
		not  string
	}{
		"explained": {
			args: []string{"check", "--explain-index", "rules/testdata/index/shops.yaml"},
			want: []string{"ok: 13 rules", "index of 12 message rules: 9 looked up, 3 evaluated for every message",
				"shouting (rules/testdata/index/shops.yaml:28): `msg.Text != \"\"` is a negation"},
		},
		"plain": {
			args: []string{"check", "rules/testdata/index/shops.yaml"},
			want: []string{"ok: 13 rules"},
			not:  "index of",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := newRootCmd(nil)
			root.SetArgs(tc.args)
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			if err := root.ExecuteContext(t.Context()); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.not != "" && strings.Contains(out.String(), tc.not) {
				t.Errorf("output has %q:\n%s", tc.not, out.String())
			}
		})
	}
}
