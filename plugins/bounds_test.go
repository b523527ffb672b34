package plugins_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
)

// boundsProbe is the plugin the bounds tests run as a real subprocess. Its
// actions go past the bounds on what a plugin may hand the daemon, and its
// executable's name ("bounds-<what>") picks a description past them.
type boundsProbe struct{ name string }

// past is one byte more than a text may be.
const past = sdk.MaxResponseText + 1

func (p *boundsProbe) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	d := &sdk.DescribeResponse{Name: p.name, Version: "0.0.1", Actions: []sdk.Action{
		{Name: "flood", Params: []sdk.Param{{Name: "for", Default: "1s"}}},
		{Name: "bigline", Params: []sdk.Param{{Name: "stream", Default: "stdout"}}},
		{Name: "host"}, {Name: "diagnostics"}, {Name: "error"}, {Name: "echo"},
	}}
	long := strings.Repeat("x", sdk.MaxDescribeText+1)
	switch strings.TrimPrefix(p.name, "bounds-") {
	case "name":
		d.Name = long
	case "version":
		d.Version = long
	case "description":
		d.Description = long
	case "action":
		d.Actions[0].Name = long
	case "action-description":
		d.Actions[0].Description = long
	case "param":
		d.Actions[0].Params[0].Name = long
	case "param-description":
		d.Actions[0].Params[0].Description = long
	case "param-default":
		d.Actions[0].Params[0].Default = long
	}
	return d, nil
}

func (p *boundsProbe) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	switch req.Action {
	case "echo":
		return sdk.TextReply("echo"), nil
	case "flood":
		d, err := time.ParseDuration(req.Param("for"))
		if err != nil {
			return nil, err
		}
		go flood(req.Host, d)
		return sdk.TextReply("flooding"), nil
	case "bigline":
		w := io.Writer(os.Stdout) // go-plugin relays it over gRPC
		if req.Param("stream") == "raw" {
			w = os.NewFile(2, "stderr") // the process's own stderr, read by go-plugin
		}
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 100 {
			if _, err := w.Write(chunk); err != nil {
				return nil, err
			}
		}
		return sdk.TextReply("written"), nil
	case "host":
		return hostPastTheBounds(ctx, req.Host), nil
	case "diagnostics":
		ds := make([]sdk.Diagnostic, sdk.MaxDiagnostics)
		for i := range ds {
			ds[i] = sdk.Diagnostic{Severity: sdk.SeverityWarning, Summary: strings.Repeat("s", past), Detail: "d"}
		}
		return &sdk.HandleResponse{Diagnostics: ds}, nil
	case "error":
		return nil, errors.New(strings.Repeat("e", past))
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

// flood writes as fast as it can for d to every output a plugin has: its
// standard output and error (relayed by go-plugin), the process's own
// standard error (read by go-plugin), and Host.Log. It creates the file
// flood-done in its working directory, the plugin directory, when it stops.
func flood(h sdk.Host, d time.Duration) {
	end := time.Now().Add(d)
	pad := strings.Repeat(".", 100)
	var wg sync.WaitGroup
	for name, w := range map[string]io.Writer{"stdout": os.Stdout, "stderr": os.Stderr, "raw": os.NewFile(2, "stderr")} {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				fmt.Fprintf(w, "flood %s %d %s\n", name, i, pad)
			}
		})
	}
	wg.Go(func() {
		l := sdk.NewLogger(h)
		for i := 0; time.Now().Before(end); i++ {
			l.Info("flood host", "i", i, "pad", pad)
		}
	})
	wg.Wait()
	os.WriteFile("flood-done", nil, 0o644)
}

// hostPastTheBounds calls the host with a name or text one byte past its
// bound on every path that takes one, and replies with what each got.
func hostPastTheBounds(ctx context.Context, h sdk.Host) *sdk.HandleResponse {
	long := strings.Repeat("x", past)
	var out []string
	report := func(what string, err error) {
		out = append(out, fmt.Sprintf("%s: %v", what, err))
	}
	report("send text", h.Send(ctx, sdk.Send{To: "wxid_x", Text: long}))
	report("send to", h.Send(ctx, sdk.Send{To: long, Text: "hi"}))
	report("send session", h.Send(ctx, sdk.Send{To: "wxid_x", Session: long, Text: "hi"}))
	report("send account", h.Send(ctx, sdk.Send{Account: long, To: "wxid_x", Text: "hi"}))
	report("put", h.Put(ctx, long, []byte("v")))
	_, _, err := h.Get(ctx, long)
	report("get", err)
	report("delete", h.Delete(ctx, long))
	_, err = h.Keys(ctx, long)
	report("keys", err)
	_, err = h.Token(ctx, long)
	report("token", err)
	// Logging is never refused: the record is cut.
	report("log", h.Log(ctx, slog.LevelInfo, "long log "+long, slog.String("attr", long)))
	return sdk.TextReply(strings.Join(out, "\n"))
}

// boundsConfig is a Manager configuration with a tight output limit.
func boundsConfig(dir string) plugins.Config {
	return plugins.Config{Dir: dir, Output: plugins.OutputLimits{
		LinesPerSecond: 20, Burst: 20, ReportInterval: 100 * time.Millisecond,
	}}
}

// pluginRecords returns the daemon's log lines holding marker.
func pluginRecords(logs *logBuffer, marker string) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, marker) {
			out = append(out, l)
		}
	}
	return out
}

func TestFloodingPluginIsBounded(t *testing.T) {
	t.Parallel()
	dir := pluginDir(t, true, "bounds", "bounds-other")
	cfg := boundsConfig(dir)
	began := time.Now()
	m, logs := startManager(t, cfg, newMemHost())

	if got, err := call(m, "bounds", "flood", nil); err != nil || got != "flooding" {
		t.Fatalf("flood: %q, %v", got, err)
	}
	// The daemon answers while the flood goes on: another action of the
	// flooding plugin, and another plugin.
	for _, p := range []string{"bounds", "bounds-other"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := m.Call(ctx, p, "echo", &sdk.HandleRequest{})
		cancel()
		if err != nil || resp.Replies[0].Text != "echo" {
			t.Fatalf("%s.echo during the flood: %+v, %v", p, resp, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "flood-done")); err == nil {
		t.Fatal("the flood ended before the calls made during it; the test proves nothing")
	}
	waitFor(t, "the flood to end", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "flood-done"))
		return err == nil
	})
	lines := pluginRecords(logs, `msg="flood `)
	elapsed := time.Since(began)
	limit := cfg.Output.Burst + int(float64(cfg.Output.LinesPerSecond)*elapsed.Seconds()) + 1
	if len(lines) == 0 || len(lines) > limit {
		t.Errorf("the log holds %d lines of the flood; the bound after %s is %d", len(lines), elapsed, limit)
	}
	for _, l := range lines {
		if len(l) > 4096+512 {
			t.Errorf("a %d-byte line in the log: %.200s", len(l), l)
		}
	}
	waitFor(t, "the dropped output to be reported", 10*time.Second, func() bool {
		return len(pluginRecords(logs, "plugins: plugin output dropped")) > 0
	})
	inf := info(t, m, "bounds")
	if inf.DroppedLines == 0 || inf.DroppedBytes == 0 {
		t.Errorf("Info counts no dropped output: %+v", inf)
	}
	t.Logf("flood: %d lines logged in %s, %d lines (%d bytes) dropped", len(lines), elapsed, inf.DroppedLines, inf.DroppedBytes)
}

func TestHundredMegabyteLineIsBounded(t *testing.T) {
	t.Parallel()
	const size = 100 << 20
	for _, stream := range []string{"stdout", "raw"} {
		t.Run(stream, func(t *testing.T) {
			t.Parallel()
			cfg := boundsConfig(pluginDir(t, true, "bounds"))
			// Writing and dropping 100 MB takes seconds on a loaded machine:
			// what is tested is the bound, not the speed.
			cfg.CallTimeout = time.Minute
			began := time.Now()
			m, logs := startManager(t, cfg, newMemHost())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			resp, err := m.Call(ctx, "bounds", "bigline", &sdk.HandleRequest{Params: map[string]string{"stream": stream}})
			if err != nil || resp.Replies[0].Text != "written" {
				t.Fatalf("bigline: %+v, %v", resp, err)
			}
			// The daemon keeps at most LineBytes of each line it logs.
			waitFor(t, "the line to be counted as dropped", time.Minute, func() bool {
				return info(t, m, "bounds").DroppedBytes >= size-int64(cfg.Output.Burst+1)*4096
			})
			lines := pluginRecords(logs, "xxxxxxxxxx")
			elapsed := time.Since(began)
			if limit := cfg.Output.Burst + int(float64(cfg.Output.LinesPerSecond)*elapsed.Seconds()) + 1; len(lines) == 0 || len(lines) > limit {
				t.Errorf("the log holds %d records of the line; the bound after %s is %d", len(lines), elapsed, limit)
			}
			total := 0
			for _, l := range lines {
				total += len(l)
				if len(l) > 4096+512 || !strings.Contains(l, "truncated=true") {
					t.Errorf("a %d-byte record: %.200s", len(l), l)
				}
			}
			if stream == "stdout" && len(lines) != 1 {
				t.Errorf("a line without a newline on stdout gave %d records, want 1", len(lines))
			}
			if got, err := call(m, "bounds", "echo", nil); err != nil || got != "echo" {
				t.Errorf("after the line: %q, %v", got, err)
			}
			t.Logf("%s: %d records, %d bytes logged; %d bytes dropped", stream, len(lines), total, info(t, m, "bounds").DroppedBytes)
		})
	}
}

func TestHostCallsPastTheBoundsAreRefused(t *testing.T) {
	t.Parallel()
	host := newMemHost()
	m, logs := startManager(t, boundsConfig(pluginDir(t, true, "bounds")), host)
	got, err := call(m, "bounds", "host", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"send text":    "sdk: host: send: text is 65537 bytes, more than the limit of 65536; refused",
		"send to":      "sdk: host: send: to is 65537 bytes, more than the limit of 1024; refused",
		"send session": "sdk: host: send: session is 65537 bytes, more than the limit of 1024; refused",
		"send account": "sdk: host: send: account is 65537 bytes, more than the limit of 1024; refused",
		"put":          "key is 65537 bytes, more than the limit of 1024; refused",
		"get":          "key is 65537 bytes, more than the limit of 1024; refused",
		"delete":       "key is 65537 bytes, more than the limit of 1024; refused",
		"keys":         "sdk: host: keys: prefix is 65537 bytes, more than the limit of 1024; refused",
		"token":        "session is 65537 bytes, more than the limit of 1024; refused",
		"log":          "<nil>",
	}
	lines := strings.Split(got, "\n")
	if len(lines) != len(want) {
		t.Fatalf("reply:\n%s", got)
	}
	for _, l := range lines {
		what, msg, _ := strings.Cut(l, ": ")
		if len(msg) > 200 {
			t.Errorf("%s: a %d-byte error quotes what it refused", what, len(msg))
		}
		if !strings.Contains(msg, want[what]) {
			t.Errorf("%s: %q, want %q", what, msg, want[what])
		}
	}
	if s := host.Sent(); len(s) != 0 {
		t.Errorf("the host stored %d sends", len(s))
	}
	if keys, _ := host.Keys(context.Background(), "bounds", ""); len(keys) != 0 {
		t.Errorf("the host stored %d keys", len(keys))
	}
	recs := pluginRecords(logs, `msg="long log xxx`)
	if len(recs) != 1 || len(recs[0]) > 4096+512 || !strings.Contains(recs[0], "truncated=true") {
		t.Errorf("the long Host.Log record: %d records, the first %.300s", len(recs), strings.Join(recs, ""))
	}
}

func TestAnswersPastTheBoundsAreBounded(t *testing.T) {
	t.Parallel()
	m, logs := startManager(t, boundsConfig(pluginDir(t, true, "bounds")), newMemHost())
	if _, err := m.Call(context.Background(), "bounds", "diagnostics", &sdk.HandleRequest{ID: "acc/1"}); err != nil {
		t.Fatal(err)
	}
	recs := pluginRecords(logs, `msg="plugin diagnostic"`)
	if len(recs) == 0 || len(recs) > 4 {
		t.Errorf("one answer of %d diagnostics logged %d", sdk.MaxDiagnostics, len(recs))
	}
	for _, r := range recs {
		if len(r) > 4096+512 || !strings.Contains(r, "action=diagnostics id=acc/1") {
			t.Errorf("a %d-byte diagnostic record: %.200s", len(r), r)
		}
	}
	if inf := info(t, m, "bounds"); inf.DroppedLines < sdk.MaxDiagnostics-4 {
		t.Errorf("dropped %d lines, want the %d diagnostics past the budget", inf.DroppedLines, sdk.MaxDiagnostics-4)
	}

	_, err := call(m, "bounds", "error", nil)
	if !errors.Is(err, plugins.ErrFailed) || len(err.Error()) > sdk.MaxErrorText+200 ||
		!strings.Contains(err.Error(), fmt.Sprintf("(%d more bytes cut)", past-sdk.MaxErrorText)) {
		t.Errorf("a %d-byte error: %.300s", len(err.Error()), err)
	}
}

func TestDescriptionPastTheBoundsIsRefused(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"bounds-name":               "the name is 4097 bytes",
		"bounds-version":            "the version is 4097 bytes",
		"bounds-description":        "the description is 4097 bytes",
		"bounds-action":             "action 1's name is 4097 bytes",
		"bounds-action-description": `action "flood"'s description is 4097 bytes`,
		"bounds-param":              `action "flood"'s parameter 1's name is 4097 bytes`,
		"bounds-param-description":  `action "flood"'s parameter "for"'s description is 4097 bytes`,
		"bounds-param-default":      `action "flood"'s parameter "for"'s default is 4097 bytes`,
	}
	names := []string{"bounds"}
	for n := range cases {
		names = append(names, n)
	}
	m, _ := startManager(t, boundsConfig(pluginDir(t, true, names...)), newMemHost())
	for name, want := range cases {
		inf := info(t, m, name)
		if inf.State != plugins.StateRefused || inf.Restarts != 0 ||
			!strings.Contains(inf.Problem, "refused: describe: "+want+", more than the limit of 4096; the plugin must be fixed") {
			t.Errorf("%s: %s after %d restarts: %q", name, inf.State, inf.Restarts, inf.Problem)
		}
		if _, err := call(m, name, "echo", nil); !errors.Is(err, plugins.ErrRefused) {
			t.Errorf("%s: call err = %v, want ErrRefused", name, err)
		}
	}
	if got, err := call(m, "bounds", "echo", nil); err != nil || got != "echo" {
		t.Errorf("a plugin within the bounds: %q, %v", got, err)
	}
}

func TestListFailsWhenAPluginCannotRun(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		prepare func(t *testing.T, dir string)
		dev     bool
		down    string // "" when every plugin runs
	}{
		"all pinned": {prepare: func(t *testing.T, dir string) { lock(t, dir) }},
		"one unpinned": {prepare: func(t *testing.T, dir string) {
			lock(t, dir)
			copyFile(t, filepath.Join(dir, "other"))
		}, down: "other (refused)"},
		"one unpinned in dev mode": {dev: true, prepare: func(t *testing.T, dir string) {
			lock(t, dir)
			copyFile(t, filepath.Join(dir, "other"))
		}},
		"one changed": {prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "other"))
			lock(t, dir)
			appendByte(t, filepath.Join(dir, "other"))
		}, down: "other (refused)"},
		"one that fails to start": {prepare: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "broken"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			lock(t, dir)
		}, down: "broken (restarting)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := pluginDir(t, false, "probe")
			tc.prepare(t, dir)
			var out, errOut bytes.Buffer
			// A restart backoff longer than the test keeps a plugin that
			// failed to start in "restarting": with the default 100ms, a
			// loaded machine could see its next attempt begin before the
			// other plugin had started, and List would say "starting".
			cfg := plugins.Config{Dir: dir, DevMode: tc.dev, RestartBackoff: time.Hour}
			err := plugins.RunList(context.Background(), &out, &errOut, cfg, false)
			if !strings.Contains(out.String(), "probe") || !strings.Contains(out.String(), "NAME") {
				t.Errorf("the table is missing:\n%s", out.String())
			}
			if tc.down == "" {
				if err != nil {
					t.Errorf("RunList = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, plugins.ErrNotReady) || !strings.Contains(err.Error(), "1 of 2 cannot run: "+tc.down) {
				t.Errorf("RunList = %v, want ErrNotReady naming %s", err, tc.down)
			}
		})
	}
}

// TestCheckAction is what `finderbot check --config` says of a rule's
// plugin action, for every way it can fail to be callable.
func TestCheckAction(t *testing.T) {
	t.Parallel()
	dir := pluginDir(t, true, "probe")
	copyFile(t, filepath.Join(dir, "unpinned"))
	infos, err := plugins.Probe(context.Background(), plugins.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := plugins.CheckAction(infos, dir)
	for call, want := range map[string]string{
		"probe.echo":    "",
		"probe.nosuch":  `plugin "probe" has no action "nosuch"; it offers echo, need, panic, exit, hang, fail, pid, host`,
		"unpinned.echo": `plugin "unpinned" is refused: ` + filepath.Join(dir, "unpinned") + " is not pinned",
		"missing.echo":  `no plugin "missing": ` + dir + " holds no executable of that name",
		"probe.need":    "",
	} {
		p, a, _ := strings.Cut(call, ".")
		if got := check(p, a); !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("%s: %q, want %q", call, got, want)
		}
	}
}
