package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
)

var soakFor = flag.Duration("soak", 0, "run the chaos soak for this long (0 skips it)")

const soakRules = `rules:
  - name: echo
    when: msg.Text startsWith "echo " && !msg.FromSelf
    actions:
      - reply: "{{ msg.Text }}"
  - name: plug
    when: msg.Text startsWith "plug " && !msg.FromSelf
    actions:
      - plugin: soakplugin.echo
`

// soakFigures are the soak's counts, printed at the end.
type soakFigures struct {
	mu                                        sync.Mutex
	injected, own, notices, boom              int
	kills, restarts, kicks, expiries, reloads int
	brokenReloads, maxGoroutines, maxRSSMiB   int
	want                                      map[string]bool // replies that must go out exactly once
	plug                                      map[string]bool // plugin replies: out once, or their action dead-lettered
	never                                     map[string]bool // texts that must never be answered
}

// TestSoak is the chaos soak: the daemon runs as a subprocess with several
// accounts against a simulated upstream that fails in every way it can, a
// plugin crashes on some inputs, the daemon is SIGKILLed and restarted at
// random moments and its rules are rewritten with good and broken files.
// At the end every stranger's message must have been answered exactly once
// and nothing else answered. Run it with -soak=10m.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("the chaos soak runs with -soak=DURATION")
	}
	const accounts = 4
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "soakplugin"), "./testdata/soakplugin").CombinedOutput(); err != nil {
		t.Fatalf("build the soak plugin: %v\n%s", err, out)
	}
	if _, _, err := plugins.LockDir(pluginDir, ""); err != nil {
		t.Fatal(err)
	}
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true})
	defer srv.Close()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	writeFile(t, filepath.Join(rulesDir, "soak.yaml"), soakRules)
	var accts strings.Builder
	for i := range accounts {
		fmt.Fprintf(&accts, "  - {name: a%d, wc_id: wxid_soak%d}\n", i, i)
	}
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %q, account: %q, password: %q, timeout: 2s}
accounts:
%s
rules: [./rules]
plugins: {dir: ./plugins, call_timeout: 2s}
admin: {listen: %q}
log: {level: warn}
sync: {idle_interval: 20ms, busy_interval: 0s, max_backoff: 200ms, online_check: 500ms}
send: {interval: 0s, jitter: 0s, retry_backoff: 10ms, max_retry_backoff: 100ms, max_attempts: 6}
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword, accts.String(), freeAddr(t)))

	ctx, cancel := context.WithTimeout(context.Background(), 2**soakFor+5*time.Minute)
	defer cancel()
	fig := &soakFigures{want: map[string]bool{}, plug: map[string]bool{}, never: map[string]bool{}}
	var logs bytes.Buffer
	var logMu sync.Mutex
	admin := adminOf(t, cfgPath)
	start := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), daemonEnv+"="+cfgPath)
		cmd.Stderr = writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logs.Write(p)
		})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	faults := []sim.Fault{
		{Endpoint: "/syncFinder", Kind: sim.FaultStatus, Status: 503, Rate: 0.05},
		{Endpoint: "/syncFinder", Kind: sim.FaultLatency, Latency: 300 * time.Millisecond, Rate: 0.03},
		{Endpoint: "/syncFinder", Kind: sim.FaultMalformed, Rate: 0.03},
		{Endpoint: "/syncFinder", Kind: sim.FaultTruncated, Rate: 0.03},
		{Endpoint: "/syncFinder", Kind: sim.FaultDuplicate, Rate: 0.05},
		{Endpoint: "/privateSend", Kind: sim.FaultStatus, Status: 502, Rate: 0.05},
		{Endpoint: "/privateSend", Kind: sim.FaultLatency, Latency: 200 * time.Millisecond, Rate: 0.03},
		{Endpoint: "/isOnline", Kind: sim.FaultStatus, Status: 500, Rate: 0.05},
	}
	for _, f := range faults {
		if _, err := srv.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}

	// The message stream.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.N(40)) * time.Millisecond):
			}
			wc := fmt.Sprintf("wxid_soak%d", rand.N(accounts))
			// Twenty strangers per account: twenty conversations, each
			// answered in order.
			from := fmt.Sprintf("fv1_%02d@findermsgstranger", rand.N(20))
			var m sim.Message
			fig.mu.Lock()
			switch r := rand.N(100); {
			case r < 70:
				m = sim.Text(from, fmt.Sprintf("echo %d", n))
				fig.want[m.Content] = true
			case r < 80:
				m = sim.Text(from, fmt.Sprintf("plug %d", n))
				fig.plug["ok "+m.Content] = true
			case r < 83:
				m = sim.Text(from, fmt.Sprintf("plug boom %d", n))
				fig.never["ok "+m.Content] = true
				fig.boom++
			case r < 93:
				m = sim.OwnText(from, fmt.Sprintf("echo own %d", n))
				fig.never[m.Content] = true
				fig.own++
			default:
				m = sim.Notice("finderliveclosenotifymsg", "live_id", strconv.Itoa(n))
				fig.notices++
			}
			fig.injected++
			fig.mu.Unlock()
			if _, err := srv.Inject(wc, m); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Kicks, token expiries and rule rewrites.
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(200+rand.N(800)) * time.Millisecond):
			}
			fig.mu.Lock()
			switch rand.N(3) {
			case 0:
				if in := srv.Instances(); len(in) > 0 {
					if srv.Kick(in[rand.N(len(in))].WID) == nil {
						fig.kicks++
					}
				}
			case 1:
				if tok := srv.MemberToken(sim.DefaultAccount); tok != "" && srv.ExpireToken(tok) {
					fig.expiries++
				}
			case 2:
				path := filepath.Join(rulesDir, "soak.yaml")
				if rand.N(2) == 0 {
					os.WriteFile(path, []byte("rules:\n  - name: echo\n    when: msg.Text startsWith\n"), 0o644)
					fig.brokenReloads++
				} else {
					os.WriteFile(path, []byte(soakRules+fmt.Sprintf("# rewrite %d\n", fig.reloads)), 0o644)
				}
				fig.reloads++
			}
			fig.mu.Unlock()
		}
	}()

	// SIGKILL and restart until the time is up.
	deadline := time.Now().Add(*soakFor)
	for time.Now().Before(deadline) {
		cmd := start()
		fig.restarts++
		// Long enough, now and then, for replies in doubt after a crash to
		// wait out the upstream timeout and go.
		time.Sleep(time.Duration(500+rand.N(3500)) * time.Millisecond)
		fig.sample(t, admin)
		cmd.Process.Kill()
		cmd.Wait()
		fig.kills++
	}
	close(stop)
	bg.Wait()

	// Calm: good rules, no faults, one undisturbed daemon drains it all.
	writeFile(t, filepath.Join(rulesDir, "soak.yaml"), soakRules)
	srv.ClearFaults()
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for i := range accounts {
		barrier := fmt.Sprintf("echo barrier %d", i)
		fig.want[barrier] = true
		if _, err := srv.Inject(fmt.Sprintf("wxid_soak%d", i), sim.Text("", barrier)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every echo is answered and every plugin action answered
	// or dead-lettered (a plugin that crashes often is quarantined, and the
	// actions waiting for it end in the dead letters, never silently).
	var dead map[string]bool
	count := map[string]int{}
	processed := 0
	for {
		sent := srv.Sent()
		for _, s := range sent[processed:] {
			count[s.Content]++
		}
		processed = len(sent)
		missing := 0
		for text := range fig.want {
			if count[text] == 0 {
				missing++
			}
		}
		plugMissing := 0
		for text := range fig.plug {
			if count[text] == 0 {
				plugMissing++
			}
		}
		if missing == 0 && plugMissing > 0 {
			dead = deadTexts(t, admin)
			plugMissing = 0
			for text := range fig.plug {
				if count[text] == 0 && !dead[strings.TrimPrefix(text, "ok ")] {
					plugMissing++
				}
			}
		}
		if missing+plugMissing == 0 {
			break
		}
		// Wait for a batch of sends, or a second, before counting again:
		// counting on every send would cost quadratic time.
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		_, err := srv.WaitSent(wctx, processed+200)
		wcancel()
		if ctx.Err() != nil {
			logMu.Lock()
			t.Fatalf("%d replies never came: %v\nlast daemon log:\n%s", missing+plugMissing, err, tail(logs.String(), 40))
		}
	}
	if dead == nil {
		dead = deadTexts(t, admin)
	}
	fig.sample(t, admin)
	dups, lost, unwanted := 0, 0, 0
	for text := range fig.want {
		switch c := count[text]; {
		case c == 0:
			lost++
		case c > 1:
			dups++
			t.Errorf("%q answered %d times: %s", text, c, sentOf(srv, text))
		}
	}
	deadPlug := 0
	for text := range fig.plug {
		c := count[text]
		if dead[strings.TrimPrefix(text, "ok ")] {
			deadPlug++
			if c > 0 {
				t.Errorf("%q both answered and dead-lettered", text)
			}
		}
		if c > 1 {
			dups++
			t.Errorf("%q answered %d times", text, c)
		}
	}
	for text, c := range count {
		if !fig.want[text] && !fig.plug[text] {
			unwanted++
			t.Errorf("%q sent %d times, but nothing should have been", text, c)
		}
	}
	for text := range fig.never {
		if count[text] > 0 {
			t.Errorf("%q was answered", text)
		}
	}
	if dups > 0 {
		os.WriteFile("/tmp/soak.log", logs.Bytes(), 0o644)
	}
	fmt.Printf("soak %v: %d messages injected (%d own, %d notices, %d crashing the plugin), %d replies, "+
		"%d fault kinds at 3-5%%, %d kicks, %d token expiries, %d rule rewrites (%d broken), %d SIGKILLs, "+
		"max goroutines %d, max RSS %d MiB; %d plugin actions dead-lettered; duplicates = %d, lost = %d, unwanted = %d\n",
		*soakFor, fig.injected, fig.own, fig.notices, fig.boom, len(srv.Sent()), len(faults), fig.kicks, fig.expiries,
		fig.reloads, fig.brokenReloads, fig.kills, fig.maxGoroutines, fig.maxRSSMiB, deadPlug, dups, lost, unwanted)
	if fig.maxGoroutines > 2000 || fig.maxRSSMiB > 500 {
		t.Errorf("resources not bounded: %d goroutines, %d MiB", fig.maxGoroutines, fig.maxRSSMiB)
	}
}

// deadTexts returns the texts of the messages whose actions the daemon
// dead-lettered.
func deadTexts(t *testing.T, admin string) map[string]bool {
	out := map[string]bool{}
	resp, err := http.Get("http://" + admin + "/api/dead-letters?limit=0")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var dead []store.DeadLetter
	if err := json.NewDecoder(resp.Body).Decode(&dead); err != nil {
		t.Errorf("dead letters: %v", err)
	}
	for _, d := range dead {
		if d.Item.Msg != nil {
			out[d.Item.Msg.Text] = true
		}
	}
	return out
}

// sample reads the daemon's goroutines and memory from its metrics.
func (f *soakFigures) sample(t *testing.T, admin string) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return // the daemon may be busy dying
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		f.mu.Lock()
		switch name {
		case "go_goroutines":
			f.maxGoroutines = max(f.maxGoroutines, int(v))
		case "process_resident_memory_bytes":
			f.maxRSSMiB = max(f.maxRSSMiB, int(v)>>20)
		}
		f.mu.Unlock()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// adminOf reads the admin address from a configuration file.
func adminOf(t *testing.T, path string) string {
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Admin.Listen
}

// sentOf describes the sends of one text, for failure messages.
func sentOf(srv *sim.Server, text string) string {
	var b strings.Builder
	for _, s := range srv.Sent() {
		if s.Content == text {
			fmt.Fprintf(&b, "\n  %s wId=%s at %s", s.Endpoint, s.WID, s.Time.Format("15:04:05.000"))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
