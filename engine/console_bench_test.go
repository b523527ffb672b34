package engine

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	runtimemetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/events"
)

// BenchmarkConsoleOverview measures the console's Overview with 10,000
// accounts: how long the daemon takes to serve its live fragment, and how
// long a change takes to reach a browser on the page — the event on the
// server-sent stream, then the fragment it fetches. The clock starts once
// every account is online.
//
// The browser is another process, as a real one is (serve-…, update-…):
// the figures are the daemon's serving and the loopback's, not a client's
// goroutines waiting for their turn among the daemon's. The same requests
// made from inside the daemon's process are reported beside them
// (inproc-…).
func BenchmarkConsoleOverview(b *testing.B) {
	const accounts = 10_000
	d, stop := startIdleAccounts(b, accounts, "127.0.0.1:0")
	defer stop()
	base := "http://" + d.AdminAddr()
	change := func() time.Time {
		t0 := time.Now()
		d.events.Publish(events.Event{Kind: events.KindReload, Message: "bench"})
		return t0
	}

	br := startBrowserProcess(b, base)
	in, err := newOverviewBrowser(base)
	if err != nil {
		b.Fatal(err)
	}
	defer in.close()
	var serve, update, inServe, inUpdate []time.Duration
	sched0, gc0 := readHistogram(schedLatencies), readHistogram(gcPauses)
	b.ResetTimer()
	for range b.N {
		s, u := br.round(b, change)
		serve, update = append(serve, s), append(update, u)
	}
	sched, gc := readHistogram(schedLatencies).since(sched0), readHistogram(gcPauses).since(gc0)
	for range b.N {
		s, err := in.get()
		if err != nil {
			b.Fatal(err)
		}
		t0 := change()
		if err := in.awaitChange(); err != nil {
			b.Fatal(err)
		}
		inServe, inUpdate = append(inServe, s), append(inUpdate, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(percentile(serve, 50).Seconds()*1000, "serve-p50-ms")
	b.ReportMetric(p99(serve).Seconds()*1000, "serve-p99-ms")
	b.ReportMetric(p99(update).Seconds()*1000, "update-p99-ms")
	// What the daemon's goroutines waited to run once runnable, and the
	// collector stopped the world, while the browser process measured.
	b.ReportMetric(sched.quantile(0.99)*1000, "sched-p99-ms")
	b.ReportMetric(sched.quantile(0.999)*1000, "sched-p999-ms")
	b.ReportMetric(gc.quantile(1)*1000, "gc-pause-max-ms")
	b.ReportMetric(percentile(inServe, 50).Seconds()*1000, "inproc-serve-p50-ms")
	b.ReportMetric(p99(inServe).Seconds()*1000, "inproc-serve-p99-ms")
	b.ReportMetric(p99(inUpdate).Seconds()*1000, "inproc-update-p99-ms")
}

// overviewBrowser does what a browser on the Overview does: it keeps the
// event stream open and fetches the live fragment.
type overviewBrowser struct {
	base   string
	hc     *http.Client
	stream io.Closer
	lines  *bufio.Scanner
}

func newOverviewBrowser(base string) (*overviewBrowser, error) {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	resp, err := hc.Get(base + "/events/stream")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream: %s", resp.Status)
	}
	return &overviewBrowser{base: base, hc: hc, stream: resp.Body, lines: bufio.NewScanner(resp.Body)}, nil
}

func (o *overviewBrowser) close() { o.stream.Close() }

// get fetches the fragment and returns how long it took.
func (o *overviewBrowser) get() (time.Duration, error) {
	t0 := time.Now()
	resp, err := o.hc.Get(o.base + "/fragments/overview")
	if err != nil {
		return 0, err
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n < 10_000 {
		return 0, fmt.Errorf("overview: %d, %d bytes", resp.StatusCode, n)
	}
	return time.Since(t0), nil
}

// awaitChange waits for the next event on the stream, then fetches the
// fragment again, as the page does.
func (o *overviewBrowser) awaitChange() error {
	for o.lines.Scan() {
		if strings.HasPrefix(o.lines.Text(), "data:") {
			_, err := o.get()
			return err
		}
	}
	return fmt.Errorf("event stream ended: %v", o.lines.Err())
}

// browserEnv makes the test binary a browser on the Overview of the admin
// listener it names, instead of running tests (see runBrowser).
const browserEnv = "FINDERBOT_TEST_BROWSER"

// runBrowser is the browser process: it opens the event stream and says
// "ready"; then at every line read it fetches the fragment and writes how
// long that took in nanoseconds, waits for the next event, fetches the
// fragment again and writes the wall clock's Unix nanoseconds then.
func runBrowser(base string, in io.Reader, out io.Writer) error {
	o, err := newOverviewBrowser(base)
	if err != nil {
		return err
	}
	defer o.close()
	fmt.Fprintln(out, "ready")
	cmds := bufio.NewScanner(in)
	for cmds.Scan() {
		s, err := o.get()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, s.Nanoseconds())
		if err := o.awaitChange(); err != nil {
			return err
		}
		fmt.Fprintln(out, time.Now().UnixNano())
	}
	return nil
}

// browserProcess is a browser process on the Overview (see runBrowser).
type browserProcess struct {
	cmds io.Writer
	out  *bufio.Scanner
}

func startBrowserProcess(tb testing.TB, base string) *browserProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), browserEnv+"="+base)
	cmd.Stderr = os.Stderr
	cmds, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmds.Close(); cmd.Wait() })
	p := &browserProcess{cmds: cmds, out: bufio.NewScanner(out)}
	if line := p.line(tb); line != "ready" {
		tb.Fatalf("browser process: %q", line)
	}
	return p
}

func (p *browserProcess) line(tb testing.TB) string {
	tb.Helper()
	if !p.out.Scan() {
		tb.Fatalf("browser process ended: %v", p.out.Err())
	}
	return p.out.Text()
}

func (p *browserProcess) number(tb testing.TB) int64 {
	tb.Helper()
	line := p.line(tb)
	n, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		tb.Fatalf("browser process: %q", line)
	}
	return n
}

// round has the browser fetch the fragment, then makes a change with
// change, which returns when it began, and waits for the browser to have
// fetched the fragment again: the time the fetch took, and the time from
// the change to the page updated. The two processes read the same wall
// clock.
func (p *browserProcess) round(tb testing.TB, change func() time.Time) (serve, update time.Duration) {
	tb.Helper()
	fmt.Fprintln(p.cmds, "go")
	serve = time.Duration(p.number(tb))
	t0 := change()
	return serve, time.Unix(0, p.number(tb)).Sub(t0)
}

const (
	schedLatencies = "/sched/latencies:seconds"
	gcPauses       = "/sched/pauses/stopping/gc:seconds"
)

// histogram is a runtime/metrics histogram.
type histogram struct {
	*runtimemetrics.Float64Histogram
}

func readHistogram(name string) histogram {
	s := []runtimemetrics.Sample{{Name: name}}
	runtimemetrics.Read(s)
	return histogram{s[0].Value.Float64Histogram()}
}

// since is h less what earlier counted.
func (h histogram) since(earlier histogram) histogram {
	d := &runtimemetrics.Float64Histogram{Buckets: h.Buckets, Counts: slices.Clone(h.Counts)}
	for i := range d.Counts {
		d.Counts[i] -= earlier.Counts[i]
	}
	return histogram{d}
}

// quantile is the upper bound of the bucket holding the q-quantile, in
// seconds: 0 when nothing was counted.
func (h histogram) quantile(q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var n uint64
	for i, c := range h.Counts {
		if n += c; n >= rank {
			return min(h.Buckets[i+1], math.MaxFloat64)
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

// p99 is the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration { return percentile(ds, 99) }

// percentile is the p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*p/100)]
}

// runBrowserIfRequested runs the browser process instead of the tests when
// browserEnv is set.
func runBrowserIfRequested() {
	base := os.Getenv(browserEnv)
	if base == "" {
		return
	}
	if err := runBrowser(base, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "browser process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
