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
	"net"
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
//	<!-- readme-test: stopped WHY -->       run once what runs in the background was stopped
//	                                        with Ctrl-C, as the text before it says
//
// The blocks of each section in readmeRunSections run in order, in a
// temporary folder of their own, with `finderbot` on PATH standing in for
// `go run .` (the README's commands run from the repository root); a block
// without a comment is a shell script that must succeed. Every other block
// is parsed: shell with bash -n, YAML, and Go.
const readmeMarker = "<!-- readme-test: "

// readmeRunSections are the README sections whose blocks run, each with
// what its folder holds first.
var readmeRunSections = map[string]func(t *testing.T, w *walkthrough){
	"Quickstart":       quickstartFolder,
	"Rules":            inTheCheckout,
	"Writing a plugin": func(*testing.T, *walkthrough) {},
}

// inTheCheckout runs a section in the repository itself, as its commands
// are written, for a section whose commands only read (check, test,
// replay).
func inTheCheckout(t *testing.T, w *walkthrough) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	w.dir, w.cwd = wd, wd
}

// quickstartFolder copies examples/quickstart, without any state a run of
// it left here, with its admin listener on a free port instead of 9090.
func quickstartFolder(t *testing.T, w *walkthrough) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w.replace = append(w.replace, "127.0.0.1:9090", addr)
	for _, name := range []string{"finderbot.yaml", "rules/greet.yaml", "rules/greet_test.yaml"} {
		data, err := os.ReadFile(filepath.Join("examples/quickstart", name))
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(w.dir, "examples/quickstart", name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, []byte(strings.ReplaceAll(string(data), "127.0.0.1:9090", addr)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

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
				case cur.kind != "skip" && cur.kind != "file" && cur.kind != "background" && cur.kind != "stopped":
					t.Errorf("README.md:%d: %s: the kind is skip, file, background or stopped", markAt, marker)
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

// TestReadme runs the blocks of each of readmeRunSections as a new user
// would, in order, in a folder of its own, with `finderbot` on PATH. For
// "Quickstart": the daemon on the simulator answers "哈喽", the commands
// beside it succeed, and after Ctrl-C and a message injected meanwhile, a
// new start answers it. For "Rules", in the checkout: the example rules
// compile and pass their tests, the seed page replays with --explain, and
// --explain-index explains an index. For "Writing a plugin": it writes a plugin with
// `finderbot plugins new`, tests, builds and pins it, and runs a daemon on
// the simulated upstream that answers a message through it. Each block's
// time is logged.
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
	blocks := readmeBlocks(t)
	for section, setUp := range readmeRunSections {
		t.Run(section, func(t *testing.T) {
			t.Parallel()
			w := &walkthrough{dir: t.TempDir(), state: filepath.Join(t.TempDir(), "cwd"),
				env:     append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH")),
				replace: []string{"go run . ", "finderbot "}}
			w.cwd = w.dir
			setUp(t, w)
			ran := 0
			for _, b := range blocks {
				if b.section != section || b.kind == "skip" {
					continue
				}
				begin := time.Now()
				switch {
				case b.kind == "file":
					w.file(t, b)
				case b.kind == "background":
					w.background(t, b)
				case b.kind == "stopped":
					w.stop(t)
					w.run(t, b)
				case b.lang == "sh":
					w.run(t, b)
				default:
					t.Fatalf("%v: a %s block in a walkthrough needs a readme-test comment saying what it is", b, b.lang)
				}
				t.Logf("%v: %s %s %s", b, b.kind, b.arg, time.Since(begin).Round(time.Millisecond))
				ran++
			}
			if ran == 0 {
				t.Fatalf("no block of the README's %q ran", section)
			}
			w.stop(t)
		})
	}
}

// walkthrough is the state of a README walkthrough: its folder, the current
// directory the last block left, and what runs in the background.
type walkthrough struct {
	dir, cwd string
	state    string // the file a block writes its last directory to
	env      []string
	// replace are the old, new pairs replaced in each script: what the
	// README writes for a checkout (go run .) or for one machine (port
	// 9090), and what stands in for it here.
	replace []string
	bg      []*exec.Cmd
	procs   []*daemonProc
}

// script is the text of block b as it runs here.
func (w *walkthrough) script(b readmeBlock) string {
	return strings.NewReplacer(w.replace...).Replace(b.text)
}

// run runs an sh block with bash -e in the current directory, and keeps the
// directory it ends in for the next block.
func (w *walkthrough) run(t *testing.T, b readmeBlock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	script := fmt.Sprintf("set -e\ncd %q\n%s\npwd >%q\n", w.cwd, w.script(b), w.state)
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
	cmd := exec.Command("bash", "-c", fmt.Sprintf("cd %q\nexec 1>&2\n%s", w.cwd, w.script(b)))
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
	w.bg, w.procs = nil, nil
}
