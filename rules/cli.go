package rules

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// LoadLocation returns the named time zone, or Asia/Shanghai for "".
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return ShanghaiLocation(), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("rules: time zone %q: %w", name, err)
	}
	return loc, nil
}

// Summary describes a loaded set in one line, such as "12 rules (9 message,
// 2 cron, 1 event) from 3 files".
func (s *Set) Summary() string {
	files := map[string]bool{}
	for _, r := range s.all {
		files[r.File] = true
	}
	return fmt.Sprintf("%s (%d message, %d cron, %d event) from %s", plural(len(s.all), "rule"),
		len(s.message), len(s.crons), len(s.event), plural(len(files), "file"))
}

// Check loads the rule files at paths and writes either every problem or a
// summary. It reports whether the rules are sound, for `finderbot check`.
func Check(stdout, stderr io.Writer, opts Options, paths ...string) bool {
	return checkRules(stdout, stderr, opts, false, paths)
}

// CheckExplainIndex is Check that also writes, for sound rules, how the
// index holds them (Set.ExplainIndex), for `finderbot check
// --explain-index`.
func CheckExplainIndex(stdout, stderr io.Writer, opts Options, paths ...string) bool {
	return checkRules(stdout, stderr, opts, true, paths)
}

func checkRules(stdout, stderr io.Writer, opts Options, explainIndex bool, paths []string) bool {
	set, err := Load(opts, paths...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if le, ok := err.(*LoadError); ok {
			if n := len(le.Problems); n > 1 {
				fmt.Fprintf(stderr, "%d problems\n", n)
			}
		}
		return false
	}
	for _, w := range set.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "ok: %s\n", set.Summary())
	if explainIndex {
		set.ExplainIndex(stdout)
	}
	return true
}

// Test runs the rule tests at paths, for `finderbot test`, and reports
// whether they all passed.
func Test(stdout, stderr io.Writer, opts Options, paths ...string) bool {
	rep, err := RunTests(stdout, opts, paths...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return false
	}
	if rep.Failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d tests failed\n", rep.Failed, rep.Failed+rep.Passed)
		return false
	}
	fmt.Fprintf(stdout, "PASS: %d tests\n", rep.Passed)
	return true
}

// MaxPageFile bounds the recorded reply ReplayFile reads: as large as the
// daemon's upstream client accepts a reply, so that any page it received can
// be replayed.
const MaxPageFile = 8 << 20

// ReplayFile loads the rules at rulePaths and replays the recorded
// /syncFinder reply in pagePath through them, for `finderbot replay`.
func ReplayFile(stdout io.Writer, opts Options, rulePaths []string, pagePath string, ro ReplayOptions) error {
	if opts.OnFailure == nil && !ro.Explain {
		// Replay is sequential, so a failure prints under its message.
		opts.OnFailure = func(f Failure) { fmt.Fprintf(stdout, "    !  %v\n", f.Err) }
	}
	set, err := Load(opts, rulePaths...)
	if err != nil {
		return err
	}
	data, err := sdk.ReadFile(pagePath, MaxPageFile)
	if err != nil {
		return fmt.Errorf("rules: replay: %w", err)
	}
	page, err := DecodeReply(data)
	if err != nil {
		return fmt.Errorf("%w (in %s)", err, pagePath)
	}
	fmt.Fprintf(stdout, "%s: %d messages; rules: %s\n", pagePath, len(page.Messages), set.Summary())
	Replay(stdout, set, page, ro)
	return nil
}

// ParsePlugins splits a comma-separated list of plugin actions; "" means
// not known (nil).
func ParsePlugins(list string) []string {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
