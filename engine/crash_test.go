package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
)

// daemonEnv makes the test binary run the daemon instead of the tests, so
// that crash tests can SIGKILL a real daemon process.
const daemonEnv = "FINDERBOT_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	plugins.RunShimIfRequested()
	runBrowserIfRequested()
	if addr := os.Getenv(simEnv); addr != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := sim.Run(ctx, addr, sim.Options{AutoConfirm: true}, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if path := os.Getenv(daemonEnv); path != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, path, os.Stderr, io.Discard, nil)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCrashNeverLosesOrRepeats kills the daemon process with SIGKILL at
// random moments while messages stream in, restarts it, and checks at the
// simulated upstream that every message was answered exactly once.
func TestCrashNeverLosesOrRepeats(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts real daemon processes")
	}
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true})
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := crashConfig(t, dir, srv.URL, "wxid_crash", greetRules)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs bytes.Buffer
	start := daemonStarter(t, ctx, cfgPath, &logs)

	rounds, perRound := 20, 8
	want := map[string]bool{}
	killRounds(t, start, rounds, func(r int) {
		for i := range perRound {
			text := fmt.Sprintf("echo %d-%d", r, i)
			want[text] = true
			if _, err := srv.Inject("wxid_crash", sim.Text("", text)); err != nil {
				t.Fatal(err)
			}
		}
	})
	// A last, undisturbed run answers whatever is left.
	stop := lastRun(start)
	defer stop()
	for sent := srv.Sent(); distinct(sent) < len(want); {
		var err error
		if sent, err = srv.WaitSent(ctx, len(sent)+1); err != nil {
			t.Fatalf("%v\nanswered %d of %d\ndaemon log:\n%s", err, distinct(srv.Sent()), len(want), logs.String())
		}
	}
	barrier := "echo final"
	if _, err := srv.Inject("wxid_crash", sim.Text("", barrier)); err != nil {
		t.Fatal(err)
	}
	for {
		sent, err := srv.WaitSent(ctx, len(srv.Sent())+1)
		if err != nil {
			t.Fatal(err)
		}
		if sent[len(sent)-1].Content == barrier {
			break
		}
	}
	count := map[string]int{}
	for _, s := range srv.Sent() {
		count[s.Content]++
	}
	dups := 0
	for text := range want {
		switch c := count[text]; {
		case c == 0:
			t.Errorf("%q was never answered", text)
		case c > 1:
			dups++
			t.Errorf("%q was answered %d times", text, c)
		}
	}
	t.Logf("%d rounds killed with SIGKILL, %d messages, %d replies, %d duplicates", rounds, len(want), len(srv.Sent())-1, dups)

	// The conversation log is written with the pages: however the kills
	// fell, each message is in it once, and so is each reply's echo that
	// a page brought.
	stop()
	st, err := store.Open(filepath.Join(dir, "state"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	convs, err := st.Conversations(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, c := range convs {
		for _, m := range c.Messages {
			if !m.Own {
				logged[m.Text]++
			}
		}
	}
	for text := range want {
		if logged[text] != 1 {
			t.Errorf("%q is in the conversation log %d times", text, logged[text])
		}
	}
}

// crashConfig writes, in dir, a daemon configuration of one account
// (wcID) against the simulator at url with the rules given, paced for
// crash tests, and returns its path.
func crashConfig(t *testing.T, dir, url, wcID, rules string) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "rules.yaml"), rules)
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %q, account: %q, password: %q, timeout: 2s}
accounts: [{name: shop, wc_id: %s}]
rules: [./rules.yaml]
admin: {listen: ""}
log: {level: warn}
sync: {idle_interval: 5ms, busy_interval: 0s, max_backoff: 50ms, online_check: 50ms}
send: {interval: 0s, jitter: 0s, retry_backoff: 5ms, max_retry_backoff: 20ms, max_attempts: 100}
`, url, sim.DefaultAccount, sim.DefaultPassword, wcID))
	return cfgPath
}

// daemonStarter returns a function that starts the test binary as a
// daemon on cfgPath, its log going to logs, for as long as ctx lasts.
func daemonStarter(t *testing.T, ctx context.Context, cfgPath string, logs io.Writer) func() *exec.Cmd {
	return func() *exec.Cmd {
		t.Helper()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), daemonEnv+"="+cfgPath)
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
}

// killRounds starts a daemon rounds times, each time calling inject with
// the round's number and killing the daemon with SIGKILL at a random
// moment, from before its login to after its replies.
func killRounds(t *testing.T, start func() *exec.Cmd, rounds int, inject func(round int)) {
	t.Helper()
	for r := range rounds {
		cmd := start()
		inject(r)
		// The chaos: a random moment, not a synchronisation.
		time.Sleep(time.Duration(rand.N(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// lastRun starts an undisturbed daemon and returns the function that stops
// it with SIGTERM, once however often it is called.
func lastRun(start func() *exec.Cmd) (stop func()) {
	cmd := start()
	var once sync.Once
	return func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
	}
}

func distinct(sent []sim.Sent) int {
	seen := map[string]bool{}
	for _, s := range sent {
		seen[s.Content] = true
	}
	return len(seen)
}
