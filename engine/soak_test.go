package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

var soakFor = flag.Duration("soak", 0, "run the chaos soak for this long (0 skips it)")

// soakAck is the reply to every "ack" message: the same text many times in
// one conversation, which a daemon cannot tell apart by text alone.
const soakAck = "收到"

const soakRules = `rules:
  - name: echo
    when: msg.Text startsWith "echo " && !msg.FromSelf
    actions:
      - reply: "{{ msg.Text }}"
  - name: ack
    when: msg.Text startsWith "ack " && !msg.FromSelf
    actions:
      - reply: "` + soakAck + `"
  - name: plug
    when: msg.Text startsWith "plug " && !msg.FromSelf
    actions:
      - plugin: soakplugin.echo
`

const (
	// soakCallTimeout is the daemon's upstream.timeout in the soak. It is
	// short so that the late fault can answer after the daemon gave up.
	soakCallTimeout = 2 * time.Second
	// soakLateAnswer is how long the late fault holds an answer whose call
	// the upstream already performed: longer than soakCallTimeout.
	soakLateAnswer = 3 * time.Second
	// soakSendInterval is the daemon's send.interval in the soak.
	soakSendInterval = 0 * time.Second
	// soakTwinBase starts the explicit ids of the twin messages. The
	// simulator numbers its own messages from 2^60 up to below 2^60+2^59
	// plus what it issued, so ids from 2^62 never collide with them.
	soakTwinBase = uint64(1) << 62
)

// soakPhonePeer is whom the account's owner writes to from the phone; no
// stranger of the soak writes from there.
const soakPhonePeer = "fv1_phone@findermsgstranger"

// soakFigures are the soak's counts, printed at the end.
type soakFigures struct {
	mu                                        sync.Mutex
	injected, own, notices, boom              int
	echo, acks, twins, plug                   int
	kills, restarts, kicks, expiries, reloads int
	brokenReloads, maxGoroutines, maxRSSMiB   int
	// want is how many times each answer was asked for: once for an echo,
	// a twin or a plugin action, once per "ack" for the conversation's
	// soakAck.
	want map[answerKey]int
}

// TestSoak is the chaos soak: the daemon runs as a subprocess with several
// accounts against a simulated upstream that fails in every way it can
// (including sends it accepted and then answered late or cut short),
// a plugin crashes on some inputs, the daemon is SIGKILLed and restarted at
// random moments and its rules are rewritten with good and broken files.
// Then the chaos stops, the last daemon drains, and the simulator's record
// of sends is counted: every expected answer sent exactly once (or
// dead-lettered), and nothing else sent. Run it with -soak=10m.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("the chaos soak runs with -soak=DURATION")
	}
	if dl, ok := t.Deadline(); ok {
		if need := *soakFor + soakDrain(*soakFor, 0) + time.Minute; time.Until(dl) < need {
			t.Fatalf("the soak needs about %v but go test's -timeout ends it in %v: run it with -timeout 0",
				need.Round(time.Second), time.Until(dl).Round(time.Second))
		}
	}
	const accounts = 4
	dir := t.TempDir()
	buildPlugin(t, dir, "soakplugin", "./testdata/soakplugin") // ./plugins in the configuration
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true})
	defer srv.Close()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	writeFile(t, filepath.Join(rulesDir, "soak.yaml"), soakRules)
	var accts strings.Builder
	wcIDs := map[string]string{} // account name → wcId, to place dead letters
	for i := range accounts {
		name, wc := fmt.Sprintf("a%d", i), fmt.Sprintf("wxid_soak%d", i)
		wcIDs[name] = wc
		fmt.Fprintf(&accts, "  - {name: %s, wc_id: %s}\n", name, wc)
	}
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %q, account: %q, password: %q, timeout: %s}
accounts:
%s
rules: [./rules]
plugins: {dir: ./plugins, call_timeout: 2s}
admin: {listen: %q}
log: {level: warn}
sync: {idle_interval: 20ms, busy_interval: 0s, max_backoff: 200ms, online_check: 500ms}
send: {interval: %s, jitter: 0s, retry_backoff: 10ms, max_retry_backoff: 100ms, max_attempts: 6}
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword, soakCallTimeout, accts.String(), freeAddr(t), soakSendInterval))

	ctx, cancel := context.WithTimeout(context.Background(), 2**soakFor+5*time.Minute)
	defer cancel()
	fig := &soakFigures{want: map[answerKey]int{}}
	var logs bytes.Buffer
	var logMu sync.Mutex
	adminAddr := adminOf(t, cfgPath)
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
		// A page repeating one of its items, and pages with items without
		// a usable id: each skipped alone, the rest answered.
		{Endpoint: "/syncFinder", Kind: sim.FaultRepeatID, Rate: 0.03},
		{Endpoint: "/syncFinder", Kind: sim.FaultBadID, Rate: 0.03},
		{Endpoint: "/privateSend", Kind: sim.FaultStatus, Status: 502, Rate: 0.05},
		// Accepted, then the answer is not JSON.
		{Endpoint: "/privateSend", Kind: sim.FaultAcceptedMalformed, Rate: 0.03},
		{Endpoint: "/privateSend", Kind: sim.FaultLatency, Latency: 200 * time.Millisecond, Rate: 0.03},
		// The send is performed and echoed, then its answer is cut: the
		// daemon cannot tell it from a send that never happened.
		{Endpoint: "/privateSend", Kind: sim.FaultTruncated, Rate: 0.03},
		// The send is performed at once and answered after the daemon's
		// call timeout.
		{Endpoint: "/privateSend", Kind: sim.FaultLate, Latency: soakLateAnswer, Rate: 0.03},
		{Endpoint: "/isOnline", Kind: sim.FaultStatus, Status: 500, Rate: 0.05},
	}
	var active []string
	for _, f := range faults {
		if _, err := srv.AddFault(f); err != nil {
			t.Fatal(err)
		}
		active = append(active, string(f.Kind)+" "+f.Endpoint)
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
			var msgs []sim.Message
			answer := "" // what the daemon must send back, "" for nothing
			var count *int
			switch r := rand.N(100); {
			case r < 55:
				msgs = []sim.Message{sim.Text(from, fmt.Sprintf("echo %d", n))}
				answer, count = msgs[0].Content, &fig.echo
			case r < 65:
				msgs = []sim.Message{sim.Text(from, fmt.Sprintf("ack %d", n))}
				answer, count = soakAck, &fig.acks
			case r < 70:
				// Two copies of one message, same id, in one inject: they
				// arrive together and must be answered once.
				m := sim.Text(from, fmt.Sprintf("echo twin %d", n))
				m.ID = soakTwinBase + uint64(n)
				msgs = []sim.Message{m, m}
				answer, count = m.Content, &fig.twins
			case r < 78:
				msgs = []sim.Message{sim.Text(from, fmt.Sprintf("plug %d", n))}
				answer, count = "ok "+msgs[0].Content, &fig.plug
			case r < 81:
				msgs = []sim.Message{sim.Text(from, fmt.Sprintf("plug boom %d", n))}
				count = &fig.boom
			case r < 91:
				// The owner writes from the phone, in a conversation of
				// their own: human takeover (on, as by default) pauses that
				// one alone. A bot reply's echo taken for the owner's would
				// pause a stranger's conversation, and its answers would
				// be missing at the end.
				msgs = []sim.Message{sim.OwnText(soakPhonePeer, fmt.Sprintf("echo own %d", n))}
				count = &fig.own
			default:
				msgs = []sim.Message{sim.Notice("finderliveclosenotifymsg", "live_id", strconv.Itoa(n))}
				count = &fig.notices
			}
			out, err := srv.Inject(wc, msgs...)
			if err != nil {
				t.Error(err)
				return
			}
			fig.mu.Lock()
			fig.injected++
			*count++
			if answer != "" {
				fig.want[answerKey{convOf(wc, out[0].From), answer}]++
			}
			fig.mu.Unlock()
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
		fig.sample(adminAddr)
		cmd.Process.Kill()
		cmd.Wait()
		fig.kills++
	}
	close(stop)
	bg.Wait()

	// Calm: good rules, no faults, no kills; one undisturbed daemon drains
	// what the chaos left.
	writeFile(t, filepath.Join(rulesDir, "soak.yaml"), soakRules)
	srv.ClearFaults()
	cmd := start()
	var stopOnce sync.Once
	stopDaemon := func() { stopOnce.Do(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }) }
	defer stopDaemon()
	for i := range accounts {
		wc := fmt.Sprintf("wxid_soak%d", i)
		barrier := fmt.Sprintf("echo barrier %d", i)
		out, err := srv.Inject(wc, sim.Text("", barrier))
		if err != nil {
			t.Fatal(err)
		}
		fig.want[answerKey{convOf(wc, out[0].From), barrier}]++
	}

	// Drain: poll the simulator's record and the dead letters until every
	// expected answer is accounted for and the outbox is empty (nothing
	// more can go out), or the budget is spent. The answers still missing
	// then are counted as lost.
	backlog := countAnswers(fig.want, srv.Sent(), nil).Lost
	budget := soakDrain(*soakFor, backlog/accounts)
	if dl, ok := t.Deadline(); ok {
		// Leave time to count and report before go test's own timeout.
		budget = min(budget, time.Until(dl)-30*time.Second)
	}
	drainStart := time.Now()
	var dead map[answerKey]int
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	drained := false
	for time.Since(drainStart) < budget && ctx.Err() == nil {
		f := countAnswers(fig.want, srv.Sent(), dead)
		if f.Lost > 0 {
			// Sends alone do not cover it: dead letters may.
			if d, err := deadAnswers(adminAddr, wcIDs); err == nil {
				dead = d
				f = countAnswers(fig.want, srv.Sent(), dead)
			}
		}
		if f.Lost == 0 && outboxEmpty(adminAddr) {
			drained = true
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	drainTook := time.Since(drainStart)
	fig.sample(adminAddr)
	dead, err := deadAnswers(adminAddr, wcIDs)
	if err != nil {
		t.Errorf("dead letters: %v (every dead-lettered answer will count as lost)", err)
	}
	// The record is final once the daemon is gone.
	stopDaemon()
	sent := srv.Sent()
	f := countAnswers(fig.want, sent, dead)

	logMu.Lock()
	daemonLog := logs.String()
	logMu.Unlock()
	deadN := 0
	for k, n := range dead {
		if fig.want[k] > 0 {
			deadN += min(n, fig.want[k])
		}
	}
	fmt.Printf("soak %v: %d messages injected (%d echo, %d ack, %d twins sent twice, %d plugin, %d crashing the plugin, %d own, %d notices), "+
		"%d sends, %d faults at 3-5%% (%s), %d kicks, %d token expiries, %d rule rewrites (%d broken), %d SIGKILLs, "+
		"max goroutines %d, max RSS %d MiB; drain %v of %v; %d expected answers dead-lettered; "+
		"lost = %d, duplicates = %d, unwanted = %d, answered yet dead-lettered = %d\n",
		*soakFor, fig.injected, fig.echo, fig.acks, fig.twins, fig.plug, fig.boom, fig.own, fig.notices,
		len(sent), len(active), strings.Join(active, ", "), fig.kicks, fig.expiries, fig.reloads, fig.brokenReloads, fig.kills,
		fig.maxGoroutines, fig.maxRSSMiB, drainTook.Round(time.Second), budget.Round(time.Second), deadN,
		f.Lost, f.Duplicates, f.Unwanted, f.DeadSent)
	if f.Lost+f.Duplicates+f.Unwanted+f.DeadSent > 0 {
		logPath := filepath.Join(os.TempDir(), "finderbot-soak.log")
		os.WriteFile(logPath, []byte(daemonLog), 0o644)
		// A few examples of each kind: the kinds point at the fault shapes.
		var b strings.Builder
		shown := map[string]int{}
		for _, p := range f.Problems {
			kind := soakKindOf(p.Key.Text)
			if shown[kind]++; shown[kind] > 5 {
				continue
			}
			fmt.Fprintf(&b, "\n  %s %q in %s: asked %d, sent %d, dead-lettered %d", kind, p.Key.Text, p.Key.Conv, p.Want, p.Sent, p.Dead)
			if p.Sent > 1 && p.Key.Text != soakAck {
				b.WriteString(sentOf(sent, p.Key.Text))
			}
		}
		t.Errorf("%d lost, %d duplicates, %d unwanted, %d answered yet dead-lettered (by kind: %s); daemon log in %s; up to five answers in trouble of each kind:%s",
			f.Lost, f.Duplicates, f.Unwanted, f.DeadSent, byKind(f.Problems), logPath, b.String())
	}
	if !drained {
		t.Logf("the drain budget of %v ran out before every expected answer was accounted for; last daemon log:\n%s",
			budget.Round(time.Second), tail(daemonLog, 20))
	}
	if fig.maxGoroutines > 2000 || fig.maxRSSMiB > 500 {
		t.Errorf("resources not bounded: %d goroutines, %d MiB", fig.maxGoroutines, fig.maxRSSMiB)
	}
}

// soakDrain is how long the last daemon may take to send what the chaos
// left: a minute at least, longer after a longer soak (more replies in
// doubt and more retries behind), plus the time an account's share of the
// backlog takes at the send pace.
func soakDrain(soak time.Duration, backlogPerAccount int) time.Duration {
	const perCall = 20 * time.Millisecond // one round trip to the in-process simulator
	return max(time.Minute, soak/2) + time.Duration(backlogPerAccount)*(soakSendInterval+perCall)
}

// answerKey names an answer: its text in one conversation.
type answerKey struct {
	Conv string // convOf the account and the stranger
	Text string
}

// convOf names the conversation of WeChat account wcID with user.
func convOf(wcID, user string) string { return wcID + " " + user }

// answerProblem is one answer whose count is wrong.
type answerProblem struct {
	Key              answerKey
	Want, Sent, Dead int
}

// answerFigures is what countAnswers found.
type answerFigures struct {
	// Lost counts expected answers neither sent nor dead-lettered.
	Lost int
	// Duplicates counts sends beyond the number of times an answer was
	// asked for.
	Duplicates int
	// Unwanted counts sends of answers nothing asked for (including one
	// sent to the wrong conversation).
	Unwanted int
	// DeadSent counts answers dead-lettered although they were sent: the
	// operator would be told of a failure that did not happen.
	DeadSent int
	// Problems lists every answer behind the figures above.
	Problems []answerProblem
}

// countAnswers compares the simulator's record of sends with the answers
// that were asked for (want, by multiplicity: a conversation given five
// "ack" messages wants five soakAck) and the dead letters (dead, counted
// the same way).
func countAnswers(want map[answerKey]int, sent []sim.Sent, dead map[answerKey]int) answerFigures {
	got := map[answerKey]int{}
	for _, s := range sent {
		user := s.ToUserName
		if s.Endpoint == "/sendText" {
			user = s.WcID
		}
		got[answerKey{convOf(s.Account, user), s.Content}]++
	}
	var f answerFigures
	for k, w := range want {
		s, d := got[k], min(dead[k], w)
		p := answerProblem{Key: k, Want: w, Sent: s, Dead: dead[k]}
		lost := max(0, w-s-d)
		dup := max(0, s-w)
		deadSent := max(0, min(s, w)+d-w)
		f.Lost += lost
		f.Duplicates += dup
		f.DeadSent += deadSent
		if lost+dup+deadSent > 0 {
			f.Problems = append(f.Problems, p)
		}
	}
	for k, s := range got {
		if want[k] == 0 {
			f.Unwanted += s
			f.Problems = append(f.Problems, answerProblem{Key: k, Sent: s, Dead: dead[k]})
		}
	}
	slices.SortFunc(f.Problems, func(a, b answerProblem) int {
		return strings.Compare(a.Key.Conv+"\x00"+a.Key.Text, b.Key.Conv+"\x00"+b.Key.Text)
	})
	return f
}

// soakKindOf names the kind of message an answer belongs to.
func soakKindOf(text string) string {
	switch {
	case text == soakAck:
		return "ack"
	case strings.HasPrefix(text, "echo twin "):
		return "twin"
	case strings.HasPrefix(text, "echo barrier "):
		return "barrier"
	case strings.HasPrefix(text, "echo own "):
		return "own"
	case strings.HasPrefix(text, "echo "):
		return "echo"
	case strings.HasPrefix(text, "ok plug boom "):
		return "boom"
	case strings.HasPrefix(text, "ok plug "):
		return "plug"
	}
	return "other"
}

// byKind sums the problems per kind of message, to show which fault shape
// they come from.
func byKind(problems []answerProblem) string {
	type sums struct{ lost, dup, unwanted, deadSent int }
	per := map[string]*sums{}
	for _, p := range problems {
		k := soakKindOf(p.Key.Text)
		if per[k] == nil {
			per[k] = &sums{}
		}
		s := per[k]
		if p.Want == 0 {
			s.unwanted += p.Sent
			continue
		}
		d := min(p.Dead, p.Want)
		s.lost += max(0, p.Want-p.Sent-d)
		s.dup += max(0, p.Sent-p.Want)
		s.deadSent += max(0, min(p.Sent, p.Want)+d-p.Want)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(per)) {
		s := per[k]
		parts = append(parts, fmt.Sprintf("%s lost %d dup %d unwanted %d dead-sent %d", k, s.lost, s.dup, s.unwanted, s.deadSent))
	}
	return strings.Join(parts, "; ")
}

func TestCountAnswers(t *testing.T) {
	const a, b = "wxid_a", "wxid_b"
	key := func(wc, user, text string) answerKey { return answerKey{convOf(wc, user), text} }
	send := func(wc, user, text string) sim.Sent {
		return sim.Sent{Endpoint: "/privateSend", Account: wc, ToUserName: user, Content: text}
	}
	want := map[answerKey]int{
		key(a, "u1", "echo 1"):    1,
		key(a, "u1", "echo 2"):    1,
		key(a, "u2", "echo 3"):    1,
		key(a, "u1", soakAck):     3,
		key(b, "u1", soakAck):     2,
		key(b, "u2", "ok plug 4"): 1,
	}
	clean := []sim.Sent{
		send(a, "u1", "echo 1"), send(a, "u1", soakAck), send(a, "u1", "echo 2"), send(a, "u1", soakAck),
		send(a, "u2", "echo 3"), send(b, "u1", soakAck), send(a, "u1", soakAck), send(b, "u1", soakAck),
		send(b, "u2", "ok plug 4"),
	}
	tests := map[string]struct {
		sent                           []sim.Sent
		dead                           map[answerKey]int
		lost, dups, unwanted, deadSent int
	}{
		"clean": {sent: clean},
		"dead-lettered answers are not lost": {
			sent: slices.Delete(slices.Clone(clean), 8, 9),
			dead: map[answerKey]int{key(b, "u2", "ok plug 4"): 1, key(a, "u9", "ok plug boom 5"): 1},
		},
		"one lost, one duplicate, one unwanted": {
			// echo 1 never sent, echo 2 sent twice, echo own 7 sent.
			sent: append(slices.Delete(slices.Clone(clean), 0, 1),
				send(a, "u1", "echo 2"), send(a, "u1", "echo own 7")),
			lost: 1, dups: 1, unwanted: 1,
		},
		"identical texts are counted per conversation": {
			// One ack of a/u1 went to b/u1 instead: a/u1 lacks one, b/u1
			// has one too many.
			sent: append(slices.Delete(slices.Clone(clean), 6, 7), send(b, "u1", soakAck)),
			lost: 1, dups: 1,
		},
		"an ack short, one dead-lettered": {
			sent: slices.Delete(slices.Clone(clean), 6, 7),
			dead: map[answerKey]int{key(a, "u1", soakAck): 1},
		},
		"an ack too many": {
			sent: append(slices.Clone(clean), send(a, "u1", soakAck)),
			dups: 1,
		},
		"the wrong conversation": {
			sent: append(slices.Delete(slices.Clone(clean), 4, 5), send(a, "u1", "echo 3")),
			lost: 1, unwanted: 1,
		},
		"answered yet dead-lettered": {
			sent:     clean,
			dead:     map[answerKey]int{key(a, "u2", "echo 3"): 1},
			deadSent: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := countAnswers(want, tc.sent, tc.dead)
			if f.Lost != tc.lost || f.Duplicates != tc.dups || f.Unwanted != tc.unwanted || f.DeadSent != tc.deadSent {
				t.Errorf("lost %d, duplicates %d, unwanted %d, dead-sent %d; want %d, %d, %d, %d; problems %+v",
					f.Lost, f.Duplicates, f.Unwanted, f.DeadSent, tc.lost, tc.dups, tc.unwanted, tc.deadSent, f.Problems)
			}
			if clean := tc.lost+tc.dups+tc.unwanted+tc.deadSent == 0; clean != (len(f.Problems) == 0) {
				t.Errorf("problems %+v", f.Problems)
			}
		})
	}
}

// soakHTTP bounds every call to the daemon's admin API, so that a stuck
// daemon fails the soak instead of hanging it.
var soakHTTP = &http.Client{Timeout: 10 * time.Second}

// deadAnswers reads the daemon's dead letters as the answers they stand
// for: a reply's text, or "ok <text>" for an action of the soak plugin,
// each in its conversation.
func deadAnswers(adminAddr string, wcIDs map[string]string) (map[answerKey]int, error) {
	resp, err := soakHTTP.Get("http://" + adminAddr + "/api/dead-letters?limit=0") // 0: all of them
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/api/dead-letters: %s", resp.Status)
	}
	var dead []store.DeadLetter
	if err := json.NewDecoder(resp.Body).Decode(&dead); err != nil {
		return nil, fmt.Errorf("/api/dead-letters: %w", err)
	}
	out := map[answerKey]int{}
	for _, d := range dead {
		it := d.Item
		wc := wcIDs[it.Account]
		switch {
		case it.Kind == store.KindReply:
			out[answerKey{convOf(wc, it.To), it.Text}]++
		case it.Kind == store.KindPlugin && it.Msg != nil:
			out[answerKey{convOf(wc, it.Msg.From), "ok " + it.Msg.Text}]++
		}
	}
	return out, nil
}

// outboxEmpty reports whether the daemon's status shows nothing waiting in
// any account's outbox, so that nothing more will be sent.
func outboxEmpty(adminAddr string) bool {
	resp, err := soakHTTP.Get("http://" + adminAddr + "/api/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st admin.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return false
	}
	for _, a := range st.Accounts {
		if a.OutboxDepth > 0 {
			return false
		}
	}
	return true
}

// sample reads the daemon's goroutines and memory from its metrics.
func (f *soakFigures) sample(adminAddr string) {
	resp, err := soakHTTP.Get("http://" + adminAddr + "/metrics")
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
func sentOf(sent []sim.Sent, text string) string {
	var b strings.Builder
	for _, s := range sent {
		if s.Content == text {
			fmt.Fprintf(&b, "\n    %s wId=%s at %s", s.Endpoint, s.WID, s.Time.Format("15:04:05.000"))
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
