package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// adminCase is a daemon run on a simulated upstream for the commands that
// act on it through its admin API.
type adminCase struct {
	srv     *sim.Server
	dir     string
	cfg     string // the configuration file
	addr    string // admin.listen
	daemon  *daemonProc
	dropped int // dead letters the daemon has logged
}

const adminToken = "adm-5e6f7a8b9c"

// startAdminCase runs `finderbot run` against a simulator whose first reply
// is refused: with one attempt allowed, the seed page's answer is a dead
// letter once the daemon has synced.
func startAdminCase(t *testing.T) *adminCase {
	t.Helper()
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the daemon listens there
	cfg := fmt.Sprintf(`state_dir: ./data
upstream: {base_url: %q, account: %q, password: %q}
accounts: [{name: shop}]
rules: [./rules]
admin: {listen: %q, token: %q}
sync: {idle_interval: 5ms, busy_interval: 0s, online_check: 50ms}
send: {interval: 0s, jitter: 0s, max_attempts: 1}
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword, addr, adminToken)
	dir, _ := startupCase{files: map[string]string{"finderbot.yaml": cfg, "rules/ok.yaml": goodRule}}.setUp(t)
	c := &adminCase{srv: srv, dir: dir, cfg: filepath.Join(dir, "finderbot.yaml"), addr: addr}
	c.refuseNextReply(t)
	c.daemon = runDaemon(t, c.cfg)
	c.waitDead(t)
	return c
}

// refuseNextReply makes the simulator refuse the next /privateSend.
func (c *adminCase) refuseNextReply(t *testing.T) {
	t.Helper()
	if _, err := c.srv.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultRefuse, Count: 1}); err != nil {
		t.Fatal(err)
	}
}

// waitDead waits for the daemon to log one more dead letter.
func (c *adminCase) waitDead(t *testing.T) {
	t.Helper()
	c.dropped++
	c.daemon.waitForN(t, "moved to the dead letters", c.dropped)
}

// newDeadLetter makes the daemon answer a new message into a dead letter.
func (c *adminCase) newDeadLetter(t *testing.T) {
	t.Helper()
	c.refuseNextReply(t)
	in := c.srv.Instances() // the account has synced: its login is the last
	if _, err := c.srv.Inject(in[len(in)-1].WcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	c.waitDead(t)
}

// run runs finderbot with args and --config, and checks its exit status and
// that stdout (on success) or stderr (on failure) holds each of want.
func (c *adminCase) run(t *testing.T, wantCode int, args []string, want ...string) string {
	t.Helper()
	args = append(args, "--config", c.cfg)
	stdout, stderr, code := runFinderbot(t, args...)
	out := stdout
	if wantCode != 0 {
		out = stderr
	}
	if code != wantCode {
		t.Fatalf("finderbot %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("finderbot %s does not say %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// deadLetters returns the ids of the daemon's dead letters, through the
// command.
func (c *adminCase) deadLetters(t *testing.T) []uint64 {
	t.Helper()
	var dead []store.DeadLetter
	if err := json.Unmarshal([]byte(c.run(t, 0, []string{"deadletters", "ls", "--json"})), &dead); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, d := range dead {
		ids = append(ids, d.Item.ID)
	}
	return ids
}

// TestStatusCommand: status shows the account online, as a table and as
// the daemon's JSON; a missing or wrong token, and a daemon that is not
// running, are each said plainly.
func TestStatusCommand(t *testing.T) {
	t.Parallel()
	c := startAdminCase(t)
	out := c.run(t, 0, []string{"status"}, "finderbot at "+c.addr+": up ", ", 1 rules\n", "ACCOUNT  STATE ", "\nshop     online ")
	t.Logf("finderbot status:\n%s", out)
	var st admin.Status
	if err := json.Unmarshal([]byte(c.run(t, 0, []string{"status", "--json"})), &st); err != nil || len(st.Accounts) != 1 || st.Accounts[0].Name != "shop" {
		t.Errorf("status --json: %+v, %v", st, err)
	}

	stdout, stderr, code := runFinderbot(t, "status", "--addr", c.addr)
	if code != 1 || stdout != "" || stderr != "finderbot: admin: the daemon at "+c.addr+" requires its admin token, and none was given: set admin.token in the configuration, or pass --token\n" {
		t.Errorf("status without the token: exit %d\n%s%s", code, stdout, stderr)
	}
	c.run(t, 1, []string{"status", "--token", "adm-wrong"}, "finderbot: admin: the daemon at "+c.addr+" refused the token given")
	c.run(t, 0, []string{"status", "--addr", c.addr}, "\nshop     online ") // the token of --config

	c.daemon.stop(t)
	stdout, stderr, code = runFinderbot(t, "status", "--config", c.cfg)
	if want := "finderbot: no finderbot daemon answers at " + c.addr + " (admin.listen in " + c.cfg + "); is it running?\n"; code != 1 || stdout != "" || stderr != want {
		t.Errorf("status with no daemon: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}
}

// TestDeadLettersCommand lists, retries and drops real dead letters: a
// retried one goes out, a dropped one never does.
func TestDeadLettersCommand(t *testing.T) {
	t.Parallel()
	c := startAdminCase(t)
	ids := c.deadLetters(t)
	if len(ids) != 1 {
		t.Fatalf("dead letters %v, want the seed page's answer", ids)
	}
	first := fmt.Sprint(ids[0])
	out := c.run(t, 0, []string{"deadletters", "ls"}, "ID  KIND   ACCOUNT", "\n"+first+"   reply  shop ", `"你好"`, "1 attempts")
	t.Logf("finderbot deadletters ls:\n%s", out)

	c.run(t, 0, []string{"deadletters", "retry", first}, "dead letter "+first+" queued again as item ", "(reply, account shop)")
	if s, err := c.srv.WaitSent(t.Context(), 1); err != nil || s[0].Content != "你好" {
		t.Fatalf("the retried reply: %+v, %v", s, err)
	}
	c.run(t, 0, []string{"deadletters", "ls"}, "no dead letters")
	c.run(t, 1, []string{"deadletters", "retry", first}, "answered 404 Not Found: ", "no such dead letter")

	c.newDeadLetter(t)
	ids = c.deadLetters(t)
	if len(ids) != 1 {
		t.Fatalf("dead letters %v, want one", ids)
	}
	c.run(t, 0, []string{"deadletters", "drop", fmt.Sprint(ids[0])}, fmt.Sprintf("dead letter %d dropped\n", ids[0]))
	c.run(t, 0, []string{"deadletters", "ls"}, "no dead letters")
	c.run(t, 1, []string{"deadletters", "drop", fmt.Sprint(ids[0])}, "no such dead letter")

	c.newDeadLetter(t)
	c.newDeadLetter(t)
	c.run(t, 0, []string{"deadletters", "retry", "--all", "--kind", "send"}, "0 send dead letters queued again\n")
	c.run(t, 0, []string{"deadletters", "retry", "--all", "--kind", "reply"}, "2 reply dead letters queued again\n")
	if s, err := c.srv.WaitSent(t.Context(), 3); err != nil {
		t.Fatalf("the replies retried: %+v, %v", s, err)
	}
	c.run(t, 0, []string{"deadletters", "ls"}, "no dead letters")
	c.run(t, 1, []string{"deadletters", "retry", "--all", "--kind", "replies"}, `kind "replies" is not an action kind (reply, send, plugin)`)

	if s := c.srv.Sent(); len(s) != 3 {
		t.Errorf("sent %d replies, want the 3 retried and not the one dropped: %+v", len(s), s)
	}
}

// TestDeadLettersCommandLine: a mistyped command line is refused before
// any daemon is asked.
func TestDeadLettersCommandLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deadletters", "retry"}, "give one dead letter ID (the ID column of finderbot deadletters ls), or --all"},
		{[]string{"deadletters", "retry", "7", "--all"}, "give a dead letter ID or --all, not both"},
		{[]string{"deadletters", "retry", "7", "--kind", "reply"}, "--kind goes with --all"},
		{[]string{"deadletters", "retry", "x7"}, `"x7" is not a dead letter ID`},
		{[]string{"deadletters", "drop", "1.5"}, `"1.5" is not a dead letter ID`},
	} {
		stdout, stderr, code := runFinderbot(t, append(c.args, "--addr", "127.0.0.1:1")...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("finderbot %s: exit %d, stderr %q, want %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// TestReloadCommand: reload says ok, or prints where a rule file is broken
// and exits 1 while the daemon keeps its rules.
func TestReloadCommand(t *testing.T) {
	t.Parallel()
	c := startAdminCase(t)
	c.run(t, 0, []string{"reload"}, "ok: 1 rules in force\n")
	bad := filepath.Join(c.dir, "rules", "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: broken\n    when: msg.Text == \"x\" && nosuch(1)\n    actions:\n      - reply: \"hi\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := c.run(t, 1, []string{"reload"}, "finderbot: rules not reloaded; the daemon keeps its previous rules:\n", "rules: "+bad+":3:30: ", "nosuch")
	t.Logf("reload of a broken rule file:\n%s", out)
	c.run(t, 0, []string{"status"}, ", 1 rules\n")
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	c.run(t, 0, []string{"reload"}, "ok: 1 rules in force\n")
}
