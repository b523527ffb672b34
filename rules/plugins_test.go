package rules

import (
	"errors"
	"testing"
)

// TestPluginProblemIsPositioned: what Options.PluginProblem says of a plugin
// action is a problem at the action, for each action it objects to.
func TestPluginProblemIsPositioned(t *testing.T) {
	t.Parallel()
	src := Source{Name: "r.yaml", Data: []byte(`rules:
  - name: r
    when: "true"
    actions:
      - plugin: crm.record
      - plugin: crm.nosuch
      - plugin: ghost.x
`)}
	var asked []string
	opts := Options{PluginProblem: func(plugin, action string) string {
		asked = append(asked, plugin+"."+action)
		switch plugin + "." + action {
		case "crm.nosuch":
			return "no such action"
		case "ghost.x":
			return "no such plugin"
		}
		return ""
	}}
	_, err := Compile(opts, src)
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	for i, want := range []Problem{
		{File: "r.yaml", Line: 6, Col: 17, Rule: "r", Msg: "plugin: no such action"},
		{File: "r.yaml", Line: 7, Col: 17, Rule: "r", Msg: "plugin: no such plugin"},
	} {
		got := le.Problems[i]
		got.Source = ""
		if got != want {
			t.Errorf("problem %d = %+v, want %+v", i, got, want)
		}
	}
	if len(asked) != 3 {
		t.Errorf("asked about %v, want every plugin action", asked)
	}
}
