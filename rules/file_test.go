//go:build unix

package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

const okRule = "rules:\n  - name: greet\n    when: msg.Text == \"hi\" && !msg.FromSelf\n    actions: [{reply: \"hello\"}]\n"

// TestFilesThatAreNotRuleFiles gives the rule commands named pipes, links
// to /dev/zero and files past their bound, alone and inside the directories
// they search. Each is refused at once with its path and what it is: a pipe
// used to block `finderbot check` for ever, and /dev/zero to read until
// memory ran out.
func TestFilesThatAreNotRuleFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkdir := func(name string) string {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	good := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(good, []byte(okRule), 0o644); err != nil {
		t.Fatal(err)
	}
	// In a rule directory, beside a good file, found by the search.
	inDir := sdktest.MakeNotFiles(t, mkdir("rules"), "greet.yaml", []byte(okRule), sdk.MaxFileSize)
	if err := os.WriteFile(filepath.Join(dir, "rules", "a.yaml"), []byte(okRule), 0o644); err != nil {
		t.Fatal(err)
	}
	named := sdktest.MakeNotFiles(t, dir, "greet.yaml", []byte(okRule), sdk.MaxFileSize)
	full := filepath.Join(dir, "full.yaml")
	if err := os.WriteFile(full, []byte(okRule+strings.Repeat(" ", sdk.MaxFileSize-len(okRule))), 0o644); err != nil {
		t.Fatal(err)
	}
	test := sdktest.MakeNotFiles(t, mkdir("tests"), "greet_test.yaml", nil, sdk.MaxFileSize)
	page := sdktest.MakeNotFiles(t, dir, "page.json", []byte(`{"code":"1000","data":{}}`), MaxPageFile)

	tests := map[string]struct {
		run  func() string // what the command wrote and returned
		want string
	}{
		"check of a directory holding a named pipe, a link to /dev/zero and a file past 1 MiB": {
			run: func() string { return check(filepath.Join(dir, "rules")) },
			want: "rules: " + inDir.TooLarge + " is larger than 1 MiB\n" +
				"rules: " + inDir.NamedPipe + " is a named pipe, not a regular file\n" +
				"rules: " + inDir.DevZero + " is a device, not a regular file\nFAILED",
		},
		"check of a named pipe": {
			run:  func() string { return check(good, named.NamedPipe) },
			want: "rules: " + named.NamedPipe + " is a named pipe, not a regular file\nFAILED",
		},
		"check of a link to /dev/zero": {
			run:  func() string { return check(good, named.DevZero) },
			want: "rules: " + named.DevZero + " is a device, not a regular file\nFAILED",
		},
		"check of a rule file of 1 MiB and one byte": {
			run:  func() string { return check(named.TooLarge) },
			want: "rules: " + named.TooLarge + " is larger than 1 MiB\nFAILED",
		},
		"check of a rule file of exactly 1 MiB": {
			run:  func() string { return check(full) },
			want: "ok: 1 rule (1 message, 0 cron, 0 event) from 1 file",
		},
		"rule tests that are a named pipe and a link to /dev/zero": {
			run: func() string {
				var out bytes.Buffer
				if _, err := RunTests(&out, Options{}, test.NamedPipe, test.DevZero); err != nil {
					return err.Error()
				}
				return out.String()
			},
			want: "FAIL " + test.NamedPipe + "\n    " + test.NamedPipe + " is a named pipe, not a regular file\n" +
				"FAIL " + test.DevZero + "\n    " + test.DevZero + " is a device, not a regular file",
		},
		"replay of a page that is a named pipe": {
			run:  func() string { return replay(good, page.NamedPipe) },
			want: "rules: replay: " + page.NamedPipe + " is a named pipe, not a regular file",
		},
		"replay of a page that is a link to /dev/zero": {
			run:  func() string { return replay(good, page.DevZero) },
			want: "rules: replay: " + page.DevZero + " is a device, not a regular file",
		},
		"replay of a page past 8 MiB": {
			run:  func() string { return replay(good, page.TooLarge) },
			want: "rules: replay: " + page.TooLarge + " is larger than 8 MiB",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got string
			sdktest.Returns(t, 10*time.Second, func() { got = tc.run() })
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got:\n%s\nwant it to hold:\n%s", got, tc.want)
			}
		})
	}
}

// check runs Check, the function of `finderbot check`, and returns what it
// wrote, ending in "FAILED" if it found the rules unsound.
func check(paths ...string) string {
	var out bytes.Buffer
	if !Check(&out, &out, Options{}, paths...) {
		out.WriteString("FAILED\n")
	}
	return out.String()
}

func replay(rules, page string) string {
	var out bytes.Buffer
	if err := ReplayFile(&out, Options{}, []string{rules}, page, ReplayOptions{}); err != nil {
		out.WriteString(err.Error())
	}
	return out.String()
}
