package rules

import (
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// TestGuard pins what guards decide without the VM, at the edges where Go
// and expr could disagree: characters against bytes, absent parts of a
// message, windows past midnight, negations. Each verdict is checked
// against the VM too.
func TestGuard(t *testing.T) {
	t.Parallel()
	// Friday 2026-11-20, 23:30 in Shanghai.
	now := time.Date(2026, 11, 20, 23, 30, 0, 0, shanghai)
	msg := &sdk.Message{Type: sdk.TypeText, Text: "哈喽\xff", From: "u1", Session: "s1"}
	tests := map[string]struct {
		when  string
		want  tri
		exact bool
	}{
		"len counts characters":          {`len(msg.Text) == 3`, tTrue, true},
		"a stray byte is one character":  {`len(msg.Text) > 3`, tFalse, true},
		"absent Sys reads as empty":      {`msg.Sys.Type == ""`, tTrue, true},
		"window past midnight":           {`between("22:00", "06:00")`, tTrue, true},
		"window till 24:00":              {`between("23:00", "24:00")`, tTrue, true},
		"empty window":                   {`between("09:00", "09:00")`, tFalse, true},
		"outside an empty window":        {`!between("09:00", "09:00")`, tTrue, true},
		"night is not opening hours":     {`!between("09:00", "21:00")`, tTrue, true},
		"friday":                         {`weekday() in [5] && hour() == 23 && minute() >= 30`, tTrue, true},
		"not a weekend":                  {`!(weekday() in [0, 6])`, tTrue, true},
		"negated or":                     {`!(msg.FromSelf || msg.Type == "image")`, tTrue, true},
		"not in":                         {`msg.From not in ["u1", "u2"]`, tFalse, true},
		"empty in":                       {`msg.From in []`, tFalse, true},
		"empty keyword":                  {`containsAny(msg.Text, "")`, tTrue, true},
		"account is given, not msg's":    {`account == "shop-1"`, tTrue, true},
		"false decides && before VM":     {`msg.FromSelf && lower(msg.Text) == "x"`, tFalse, false},
		"VM part left to the VM":         {`!msg.FromSelf && lower(msg.Text) == "x"`, tUnknown, false},
		"true || VM part: VM still runs": {`lower(msg.Text) == "x" || !msg.FromSelf`, tTrue, false},
		"a regex is the VM's":            {`msg.Text matches "哈"`, tUnknown, false},
		"negated regex too":              {`!(msg.Text matches "哈")`, tUnknown, false},
		"impossible hour":                {`hour() > 30`, tFalse, true},
	}
	x := newExprConf(newConfig(shanghai, DefaultMaxNodes, true))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := x.compile(tc.when, true)
			if err != nil {
				t.Fatal(err)
			}
			var e evaluator
			e.setEnv(Env{Msg: *msg, Now: now, Account: "shop-1"})
			fillMsg(&e.env.Msg, shanghai)
			e.env.Event.Message = &noMessage
			e.probe.fill(msg, "shop-1", "", now)
			if got := c.guard.eval(&e.probe); got != tc.want || c.exact != tc.exact {
				t.Errorf("%s: guard %v (exact %v), want %v (exact %v)", tc.when, got, c.exact, tc.want, tc.exact)
			}
			out, err := e.vm.Run(c.program, e.boxedEnv())
			if err != nil {
				t.Fatal(err)
			}
			if vm := triOf(out.(bool)); tc.want != tUnknown && vm != tc.want {
				t.Errorf("%s: the VM says %v, the guard %v", tc.when, vm, tc.want)
			}
		})
	}
}
