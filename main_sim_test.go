package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestQuickstartResumesAfterRestart runs the quickstart's promise with real
// processes: the daemon answers the seed "哈喽" and is stopped (cleanly, or
// killed); a stranger writes "哈喽" again through `finderbot sim inject`
// while nothing runs; the daemon started again is online without a QR
// scan and answers that message, once, and the first one not again.
func TestQuickstartResumesAfterRestart(t *testing.T) {
	t.Parallel()
	for name, stop := range map[string]func(*testing.T, *daemonProc){
		"SIGTERM": func(t *testing.T, d *daemonProc) { d.stop(t) },
		"SIGKILL": func(t *testing.T, d *daemonProc) {
			if err := d.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			d.waitExit(t, deadline)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, _ := startupCase{files: map[string]string{
				"finderbot.yaml": simConfig("./data", "./rules"),
				"rules/ok.yaml":  goodRule,
			}}.setUp(t)
			cfg := filepath.Join(dir, "finderbot.yaml")

			first := runDaemon(t, cfg)
			first.waitFor(t, `msg="action performed"`)
			stop(t, first)

			out, errOut, code := runFinderbot(t, "sim", "inject", "--config", cfg, "哈喽")
			if code != 0 || !strings.HasPrefix(out, `injected into wxid_sim000001: "哈喽" from fv1_`) {
				t.Fatalf("sim inject: exit status %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}

			second := runDaemon(t, cfg)
			second.waitFor(t, `msg="action performed"`)
			// The echo of the answer comes back as the last new message;
			// once it is synced, nothing is left to answer.
			second.waitFor(t, "new=1 actions=0")
			second.stop(t)
			log := second.log()
			for _, bad := range []string{"scan the QR code", "qr code issued", "second login"} {
				if strings.Contains(log, bad) {
					t.Errorf("the restarted daemon logged %q; it should have found its instance online:\n%s", bad, log)
				}
			}
			if n, _ := second.count(`msg="action performed"`); n != 1 {
				t.Errorf("the restarted daemon performed %d actions, want 1:\n%s", n, log)
			}

			sent := simSent(t, filepath.Join(dir, "data", engine.SimStateFile))
			_, injected, _ := strings.Cut(out, " from ")
			injected, _, _ = strings.Cut(injected, " (NewMsgId")
			if len(sent) != 2 || sent[0].ToUserName == injected || sent[1].ToUserName != injected {
				t.Errorf("the simulator received %d answers, want 2: the seed's stranger first, then %s:\n%+v", len(sent), injected, sent)
			}
		})
	}
}

// simSent returns what the simulator whose state is at path was sent.
func simSent(t *testing.T, path string) []sim.Sent {
	t.Helper()
	st, err := sim.OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return sim.New(sim.Options{State: st}).Sent()
}

// TestJSONLogsHoldOnlyJSON runs the quickstart with JSON logs: every line
// on the log stream (stderr) is a JSON object, the QR code drawn on
// stdout instead; the login, the reply and the shutdown are among them.
func TestJSONLogsHoldOnlyJSON(t *testing.T) {
	t.Parallel()
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml": simConfig("./data", "./rules") + "log: {format: json}\n",
		"rules/ok.yaml":  goodRule,
	}}.setUp(t)
	d := runDaemon(t, filepath.Join(dir, "finderbot.yaml"))
	d.waitFor(t, `"msg":"action performed"`)
	d.stop(t)
	d.mu.Lock()
	lines := slices.Clone(d.lines)
	d.mu.Unlock()
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("stderr line %d is not a JSON object (%v): %q", i+1, err, l)
		}
	}
	for _, want := range []string{`"msg":"scan the QR code with WeChat to log in"`, `"msg":"stopped"`} {
		if ok, _ := d.seen(want); !ok {
			t.Errorf("the log does not hold %s:\n%s", want, d.log())
		}
	}
}

// TestRunRefusesADamagedSimulatorState starts the quickstart on a state
// directory whose simulator state was cut short: the start is refused in
// one line naming the file, rather than started over with a new login.
func TestRunRefusesADamagedSimulatorState(t *testing.T) {
	t.Parallel()
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml": simConfig("./data", "./rules"),
		"rules/ok.yaml":  goodRule,
		"data/sim.json":  `{"version":1,"members":[`,
	}}.setUp(t)
	// A private state directory, as the daemon makes it: nothing else to say.
	if err := os.Chmod(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	cmd := finderbot(t, ctx, "run", "--config", filepath.Join(dir, "finderbot.yaml"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	checkRefused(t, cmd.Run(), stdout.String(), stderr.String(),
		"engine: start the simulated upstream: sim: the simulator state "+filepath.Join(dir, "data", "sim.json")+" is damaged: it was cut short; ",
		"move it aside to start over")
}
