package rules

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestRunTestsExamples(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	rep, err := RunTests(&out, Options{}, "../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Passed < 10 {
		t.Errorf("examples: %+v\n%s", rep, out.String())
	}
}

// TestRunTestsCustomerService runs the customer-service example's rule
// tests: image replies, FAQ priorities, opening hours and paused
// conversations.
func TestRunTestsCustomerService(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	rep, err := RunTests(&out, Options{}, "../examples/customer-service/rules")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 0 || rep.Passed < 9 {
		t.Errorf("customer-service: %+v\n%s", rep, out.String())
	}
}

// TestRunTestsFailures pins what a failing rule test prints: the test's
// name and position, evaluation failures and a diff of the actions.
func TestRunTestsFailures(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	rep, err := RunTests(&out, Options{}, "testdata/tests")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 1 || rep.Failed != 3 {
		t.Errorf("report = %+v, want 1 passed and 3 failed", rep)
	}
	golden(t, "testdata/tests/report.golden", out.String())
}

func TestRunTestsNoFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/a.yaml", []byte("rules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RunTests(&bytes.Buffer{}, Options{}, dir)
	if err == nil || !strings.Contains(err.Error(), "no rule tests") {
		t.Errorf("err = %v", err)
	}
}

func TestDiffLines(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		a, b []string
		want string
	}{
		"same":    {[]string{"x"}, []string{"x"}, "  x"},
		"changed": {[]string{"x", "y"}, []string{"x", "z"}, "  x|- y|+ z"},
		"missing": {[]string{"x", "y"}, nil, "- x|- y"},
		"extra":   {nil, []string{"x"}, "+ x"},
		"none":    {nil, nil, "  (none)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := strings.Join(diffLines(tc.a, tc.b), "|"); got != tc.want {
				t.Errorf("diff = %q, want %q", got, tc.want)
			}
		})
	}
}
