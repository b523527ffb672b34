package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The README's code blocks are tested so that the guide cannot drift from
// what the commands do. An HTML comment right above a block's fence says
// how the test treats it:
//
//	<!-- readme-test: skip WHY -->          not run (it needs the network, say); only parsed
//	<!-- readme-test: file PATH -->         the content of PATH: compared with the file when it
//	                                        exists (a file a command wrote), else written
//	<!-- readme-test: background UNTIL -->  started, and left running once its output holds UNTIL
//
// The blocks of the sections in readmeRunSections run in order, in one
// temporary folder, with `finderbot` on PATH; a block without a comment is
// a shell script that must succeed. Every other block is parsed: shell with
// bash -n, YAML, and Go.
const readmeMarker = "<!-- readme-test: "

// readmeRunSections are the README sections whose blocks run.
var readmeRunSections = map[string]bool{"Writing a plugin": true}

// readmeBlock is a fenced code block of README.md.
type readmeBlock struct {
	line    int    // of the opening fence, counting from 1
	section string // the "## " heading the block is under
	lang    string // the fence's info string: sh, yaml, go, or ""
	kind    string // of its readme-test comment: skip, file, background, or "" for none
	arg     string // what follows the kind in the comment
	text    string
}

func (b readmeBlock) String() string { return fmt.Sprintf("README.md:%d (%s)", b.line, b.section) }

// readmeBlocks reads the code blocks of README.md, failing the test on a
// readme-test comment that is malformed or stands above no block.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks  []readmeBlock
		section string
		marker  string // the readme-test comment on the line before, if any
		markAt  int
		cur     *readmeBlock
		body    []string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur != nil {
			if strings.HasPrefix(line, "```") {
				cur.text = strings.Join(body, "\n") + "\n"
				blocks = append(blocks, *cur)
				cur, body = nil, nil
			} else {
				body = append(body, line)
			}
			continue
		}
		if marker != "" && !strings.HasPrefix(line, "```") {
			t.Errorf("README.md:%d: %s is not right above a code block", markAt, marker)
		}
		switch {
		case strings.HasPrefix(line, "## "):
			section, marker = strings.TrimPrefix(line, "## "), ""
		case strings.HasPrefix(line, readmeMarker):
			marker, markAt = line, n
		case strings.HasPrefix(line, "```"):
			cur = &readmeBlock{line: n, section: section, lang: strings.TrimPrefix(line, "```")}
			if marker != "" {
				spec, ok := strings.CutSuffix(strings.TrimPrefix(marker, readmeMarker), " -->")
				cur.kind, cur.arg, _ = strings.Cut(spec, " ")
				switch {
				case !ok || cur.arg == "":
					t.Errorf("README.md:%d: %s: want <!-- readme-test: KIND ARGUMENT -->", markAt, marker)
				case cur.kind != "skip" && cur.kind != "file" && cur.kind != "background":
					t.Errorf("README.md:%d: %s: the kind is skip, file or background", markAt, marker)
				}
			}
			marker = ""
		default:
			marker = ""
		}
	}
	if cur != nil {
		t.Errorf("%v: the code block is not closed", *cur)
	}
	return blocks
}

// placeholder is how the README marks what a reader fills in
// (T=<Authorization>); it parses as a redirection, so a word stands in for it.
var placeholder = regexp.MustCompile(`<[A-Za-z][^<>\n]*>`)

// TestReadmeBlocksParse parses every code block of the README: shell with
// bash -n, YAML, and Go as a file or as declarations.
func TestReadmeBlocksParse(t *testing.T) {
	t.Parallel()
	blocks := readmeBlocks(t)
	if len(blocks) < 20 {
		t.Fatalf("found %d code blocks in README.md; the reader lost them", len(blocks))
	}
	for _, b := range blocks {
		var err error
		switch b.lang {
		case "sh":
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = strings.NewReader(placeholder.ReplaceAllString(b.text, "PLACEHOLDER"))
			if out, rerr := cmd.CombinedOutput(); rerr != nil {
				err = fmt.Errorf("%v: %s", rerr, out)
			}
		case "yaml":
			var v any
			err = yaml.Unmarshal([]byte(b.text), &v)
		case "go":
			src := b.text
			if !strings.HasPrefix(src, "package ") && !strings.HasPrefix(src, "//") {
				src = "package p\n" + src
			}
			_, err = parser.ParseFile(token.NewFileSet(), "block.go", src, parser.AllErrors)
		case "":
			// Diagrams and output, not code.
		default:
			err = fmt.Errorf("unknown language %q: use sh, yaml or go", b.lang)
		}
		if err != nil {
			t.Errorf("%v: %s block does not parse: %v", b, b.lang, err)
		}
	}
}

// TestReadme runs the blocks of readmeRunSections as a new user would, in
// order, in one folder, with `finderbot` on PATH: for "Writing a plugin",
// it writes a plugin with `finderbot plugins new`, tests, builds and pins
// it, and runs a daemon on the simulated upstream that answers a message
// through it. Each block's time is logged.
func TestReadme(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", runMainEnv, exe)
	if err := os.WriteFile(filepath.Join(bin, "finderbot"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &walkthrough{dir: t.TempDir(), state: filepath.Join(bin, "cwd"),
		env: append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))}
	w.cwd = w.dir
	ran := 0
	for _, b := range readmeBlocks(t) {
		if !readmeRunSections[b.section] || b.kind == "skip" {
			continue
		}
		begin := time.Now()
		switch {
		case b.kind == "file":
			w.file(t, b)
		case b.kind == "background":
			w.background(t, b)
		case b.lang == "sh":
			w.run(t, b)
		default:
			t.Fatalf("%v: a %s block in a walkthrough needs a readme-test comment saying what it is", b, b.lang)
		}
		t.Logf("%v: %s %s %s", b, b.kind, b.arg, time.Since(begin).Round(time.Millisecond))
		ran++
	}
	if ran == 0 {
		t.Fatal("no block of README.md ran")
	}
	w.stop(t)
}

// walkthrough is the state of a README walkthrough: its folder, the current
// directory the last block left, and what runs in the background.
type walkthrough struct {
	dir, cwd string
	state    string // the file a block writes its last directory to
	env      []string
	bg       []*exec.Cmd
	procs    []*daemonProc
}

// run runs an sh block with bash -e in the current directory, and keeps the
// directory it ends in for the next block.
func (w *walkthrough) run(t *testing.T, b readmeBlock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	script := fmt.Sprintf("set -e\ncd %q\n%s\npwd >%q\n", w.cwd, b.text, w.state)
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = w.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v failed: %v\n%s\n%s", b, err, b.text, out)
	}
	cwd, err := os.ReadFile(w.state)
	if err != nil {
		t.Fatal(err)
	}
	w.cwd = strings.TrimSpace(string(cwd))
	t.Logf("%v:\n%s", b, out)
}

// file compares the block with the file it shows, or writes the file.
func (w *walkthrough) file(t *testing.T, b readmeBlock) {
	t.Helper()
	path := filepath.Join(w.cwd, b.arg)
	have, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.text), 0o644); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	case string(have) != b.text:
		t.Errorf("%v shows %s, which differs from the file there:\n%s", b, b.arg, have)
	}
}

// background starts an sh block in its own process group and waits until
// its output holds the block's argument.
func (w *walkthrough) background(t *testing.T, b readmeBlock) {
	t.Helper()
	// The block's standard output goes where startProc reads: its stderr.
	cmd := exec.Command("bash", "-c", fmt.Sprintf("cd %q\nexec 1>&2\n%s", w.cwd, b.text))
	cmd.Env = w.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := startProc(t, cmd)
	w.bg, w.procs = append(w.bg, cmd), append(w.procs, p)
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	p.waitFor(t, b.arg)
}

// stop interrupts what runs in the background, as Ctrl-C does, and waits
// for it to end.
func (w *walkthrough) stop(t *testing.T) {
	t.Helper()
	for i, cmd := range w.bg {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Errorf("interrupt: %v", err)
		}
		if _, err := w.procs[i].waitExit(t, deadline); err != nil {
			t.Errorf("after Ctrl-C: %v\n%s", err, w.procs[i].log())
		}
	}
}
