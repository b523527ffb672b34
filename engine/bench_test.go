package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	runtimemetrics "runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	dto "github.com/prometheus/client_model/go"
)

// handlerTransport hands requests straight to an http.Handler, so that a
// benchmark measures finderbot rather than the loopback TCP stack shared
// with the simulator on the same two cores.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// BenchmarkPipeline measures messages per second through the whole daemon:
// /syncFinder pages decoded, run through the rules, committed durably (with
// fsync, batched across accounts), and every reply handed to the upstream.
// The per-account rate limit is lifted. It reports msgs/s, the p50 and p99
// time from a page's arrival to its reply's hand-off, and fsyncs/s.
func BenchmarkPipeline(b *testing.B) {
	for _, tc := range []struct {
		name     string
		accounts int
		perAcct  int
		loopback bool
		rate     int // messages/s injected while the daemon runs; 0 = all queued before it starts
	}{
		{"backlog/accounts=100/in-process", 100, 200, false, 0},
		{"backlog/accounts=1000/in-process", 1000, 20, false, 0},
		{"backlog/accounts=100/loopback", 100, 200, true, 0},
		{"steady=20000/s/accounts=100/in-process", 100, 400, false, 20000},
		{"steady=20000/s/accounts=100/loopback", 100, 400, true, 20000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				runPipeline(b, tc.accounts, tc.perAcct, tc.loopback, tc.rate, nil)
			}
		})
	}
}

// BenchmarkPipelineJetStream is BenchmarkPipeline's backlog on the
// JetStream store of a three-node cluster (three replicas) in the same
// process, beside the bbolt store in the same run: one daemon holding
// every account.
func BenchmarkPipelineJetStream(b *testing.B) {
	for _, kind := range []string{"bolt", "jetstream-3"} {
		b.Run("backlog/accounts=100/in-process/"+kind, func(b *testing.B) {
			var c *natstest.Cluster
			if kind != "bolt" {
				c = natstest.Start(b, 3)
			}
			for range b.N {
				runPipeline(b, 100, 200, false, 0, c)
			}
		})
	}
}

func runPipeline(b *testing.B, accounts, perAcct int, loopback bool, rate int, js *natstest.Cluster) {
	b.StopTimer()
	u := sim.New(sim.Options{AutoConfirm: true, NoSeed: true, NoEcho: true, PageSize: 100})
	defer u.Close()
	hc := &http.Client{Transport: handlerTransport{u}}
	baseURL := "http://sim.invalid"
	if loopback {
		srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true, NoEcho: true, PageSize: 100})
		defer srv.Close()
		u, hc, baseURL = srv.Upstream, nil, srv.URL
	}
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "rules.yaml"), greetRules)
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Upstream.BaseURL, cfg.Upstream.Account, cfg.Upstream.Password = baseURL, sim.DefaultAccount, config.Secret(sim.DefaultPassword)
	cfg.Rules = []string{filepath.Join(dir, "rules.yaml")}
	cfg.Admin.Listen = ""
	// Each account polls every 100 ms, busy or idle, as a daemon with many
	// accounts would be configured.
	cfg.Sync = config.Sync{IdleInterval: 100 * time.Millisecond, BusyInterval: 100 * time.Millisecond, MaxBackoff: time.Second, OnlineCheck: time.Minute}
	cfg.Send = config.Send{Interval: 0, Burst: 1, MaxAttempts: 8, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: time.Second}
	for i := range accounts {
		cfg.Accounts = append(cfg.Accounts, config.Account{Name: fmt.Sprintf("a%d", i), WcID: fmt.Sprintf("wxid_bench%d", i)})
	}
	if js != nil {
		cfg.Store = config.Store{Kind: config.StoreNATS, URL: js.URL(), Stream: fmt.Sprintf("BENCH%d", time.Now().UnixNano()), Replicas: 3,
			Node: "bench", LeaseTTL: 15 * time.Second, MovesPerSecond: 2, SnapshotKeep: 1}
	}
	total := accounts * perAcct
	inject := func(i, j int) {
		m := sim.Text(fmt.Sprintf("fv1_%d_%d@findermsgstranger", i, j%10), fmt.Sprintf("echo %d", j))
		if _, err := u.Inject(fmt.Sprintf("wxid_bench%d", i), m); err != nil {
			b.Error(err)
		}
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, total)
	d, err := New(&cfg, Options{HTTPClient: hc, HandOff: func(d time.Duration) {
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Log in every account before the clock starts: logins are not the
	// pipeline.
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	for _, name := range d.order {
		if _, err := d.accounts[name].keeper.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	st, isBolt := d.store.(*store.Bolt)
	var commits0, writes0 uint64
	if isBolt {
		commits0, writes0 = st.Commits(), st.Writes()
	}
	start := time.Now()
	b.StartTimer()
	if rate == 0 {
		// The backlog arrives at once, as after an outage.
		for i := range accounts {
			for j := range perAcct {
				inject(i, j)
			}
		}
	} else {
		// Inject at the rate, in ticks of 10 ms, round-robin over the
		// accounts.
		go func() {
			const tick = 10 * time.Millisecond
			per := rate / 100
			t := time.NewTicker(tick)
			defer t.Stop()
			for n := 0; n < total; {
				for k := 0; k < per && n < total; k++ {
					inject(n%accounts, n/accounts)
					n++
				}
				<-t.C
			}
		}()
	}
	if _, err := u.WaitSent(ctx, total); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	d.Close()
	slices.Sort(lat)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	if isBolt {
		commits, writes := st.Commits()-commits0, st.Writes()-writes0
		b.ReportMetric(float64(commits)/elapsed.Seconds(), "fsyncs/s")
		b.ReportMetric(float64(writes)/float64(total), "writes/msg")
	}
}

// simEnv makes the test binary serve the simulated upstream instead of
// running tests, so that a benchmark can keep the simulator's CPU out of the
// daemon's process.
const simEnv = "FINDERBOT_TEST_SIM_LISTEN"

// startSimProcess runs the simulator in a child process and returns its URL.
func startSimProcess(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), simEnv+"=127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("simulator process: %v", err)
	}
	// "finderbot simulated upstream listening on http://127.0.0.1:PORT"
	fields := strings.Fields(line)
	go io.Copy(io.Discard, out)
	return fields[len(fields)-1]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settle waits until no account has an action queued or in doubt and the
// store has written nothing for three seconds: the seed pages, their
// answers and the echoes of the last replies are done, and what follows
// measures idle polling. (An empty outbox alone is not enough: accounts
// still syncing their seed pages have queued nothing yet.)
func settle(b *testing.B, d *Daemon) {
	deadline := time.Now().Add(2 * time.Minute)
	bolt, _ := d.store.(*store.Bolt)
	var last [2]uint64
	quietSince := time.Now()
	for {
		busy := 0
		for _, name := range d.order {
			if queued, inDoubt := d.outbox.Depth(name); queued+inDoubt > 0 {
				busy++
			}
		}
		if bolt != nil {
			if now := [2]uint64{bolt.Writes(), bolt.Commits()}; now != last {
				last, quietSince = now, time.Now()
			}
		}
		if busy > 0 {
			quietSince = time.Now()
		}
		if time.Since(quietSince) >= 3*time.Second {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d accounts still have actions queued after 2 minutes", busy)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// steadyLiveBytes is the median of five readings of liveBytes a second
// apart: a single reading moves by a tenth with what the pollers allocate
// while the collection runs, which it counts as live.
func steadyLiveBytes() uint64 {
	var r [5]uint64
	for i := range r {
		if i > 0 {
			time.Sleep(time.Second)
		}
		r[i] = liveBytes()
	}
	slices.Sort(r[:])
	return r[len(r)/2]
}

// totalAlloc is the bytes allocated on the heap since the process began.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// liveBytes is the memory the live objects and the goroutine stacks take:
// the heap that the last of two collections marked live. HeapAlloc would
// count too what the pollers allocated while the collection ran, as much
// as the collection was long, and HeapInuse how full the spans happen to
// be.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	s := []runtimemetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	runtimemetrics.Read(s)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return s[0].Value.Uint64() + ms.StackInuse
}

// BenchmarkIdleAccounts runs 10,000 online accounts that poll /syncFinder
// once a second against a simulated upstream in another process, over
// loopback, with nothing to sync: the clock starts once the seed pages'
// answers are settled. It reports the daemon's CPU in cores and its memory
// per account. FINDERBOT_BENCH_PROFILE=DIR writes CPU and heap profiles of
// the idle window into DIR.
func BenchmarkIdleAccounts(b *testing.B) {
	const accounts = 10_000
	const window = 10 * time.Second
	profiles := os.Getenv("FINDERBOT_BENCH_PROFILE")
	if profiles != "" {
		runtime.MemProfileRate = 512
	}
	// admin=on serves the admin API and the browser console, which nobody
	// looks at: they must cost nothing then.
	for _, admin := range []struct{ name, listen string }{{"admin=off", ""}, {"admin=on", "127.0.0.1:0"}} {
		b.Run(admin.name, func(b *testing.B) {
			for range b.N {
				base := liveBytes()
				d, stop := startIdleAccounts(b, accounts, admin.listen)
				bolt, _ := d.store.(*store.Bolt)
				var writes0 uint64
				if bolt != nil {
					writes0 = bolt.Writes()
				}
				var cpuProfile *os.File
				if profiles != "" {
					// The window's allocations are the difference of its two
					// heap profiles (go tool pprof -sample_index=alloc_space
					// -diff_base idle_heap_start_… idle_heap_…).
					f, _ := os.Create(filepath.Join(profiles, "idle_heap_start_"+admin.name+".out"))
					pprof.WriteHeapProfile(f)
					f.Close()
					cpuProfile, _ = os.Create(filepath.Join(profiles, "idle_cpu_"+admin.name+".out"))
					pprof.StartCPUProfile(cpuProfile)
				}
				a0, p0 := totalAlloc(), polls(d)
				c0, t0 := cpuTime(), time.Now()
				time.Sleep(window)
				cores := float64(cpuTime()-c0) / float64(time.Since(t0))
				allocRate := float64(totalAlloc()-a0) / time.Since(t0).Seconds()
				pollRate := float64(polls(d)-p0) / time.Since(t0).Seconds()
				var writes uint64
				if bolt != nil {
					writes = bolt.Writes() - writes0
				}
				if profiles != "" {
					pprof.StopCPUProfile()
					cpuProfile.Close()
					runtime.GC()
					f, _ := os.Create(filepath.Join(profiles, "idle_heap_"+admin.name+".out"))
					pprof.WriteHeapProfile(f)
					f.Close()
				}
				perAccount := float64(steadyLiveBytes()-base) / accounts
				stop()
				b.ReportMetric(cores, "cores")
				b.ReportMetric(allocRate/(1<<20), "alloc-MiB/s")
				b.ReportMetric(perAccount/1024, "KiB/account")
				b.ReportMetric(float64(writes)/window.Seconds(), "writes/s")
				// A loaded machine polls less than once a second per account:
				// the costs per poll compare runs on it.
				b.ReportMetric(pollRate, "polls/s")
				b.ReportMetric(cores*1e6/pollRate, "cpu-µs/poll")
				b.ReportMetric(allocRate/pollRate, "alloc-B/poll")
			}
		})
	}
}

// polls is the number of polls the daemon made.
func polls(d *Daemon) uint64 {
	var m dto.Metric
	d.metrics.pollSeconds.Write(&m)
	return m.GetHistogram().GetSampleCount()
}

// startIdleAccounts starts a daemon of n accounts against a simulator in
// its own process, with the admin listener at adminListen ("" for none),
// and returns once every account is online and the seed pages are done.
func startIdleAccounts(b *testing.B, n int, adminListen string) (*Daemon, func()) {
	url := startSimProcess(b)
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "rules.yaml"), greetRules)
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Upstream.BaseURL, cfg.Upstream.Account, cfg.Upstream.Password = url, sim.DefaultAccount, config.Secret(sim.DefaultPassword)
	cfg.Rules = []string{filepath.Join(dir, "rules.yaml")}
	cfg.Admin.Listen = adminListen
	for i := range n {
		cfg.Accounts = append(cfg.Accounts, config.Account{Name: fmt.Sprintf("a%d", i), WcID: fmt.Sprintf("wxid_idle%d", i)})
	}
	d, err := New(&cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	for _, name := range d.order {
		if _, err := d.accounts[name].keeper.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, d)
	return d, func() {
		d.Close()
		cancel()
	}
}
