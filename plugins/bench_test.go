package plugins_test

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// Run with:
//
//	go test -run '^$' -bench . ./plugins
//
// "direct" calls the plugin's Handle in-process: the baseline the others pay
// process isolation on top of.

func benchRequest() *sdk.HandleRequest {
	return &sdk.HandleRequest{Message: sdktest.Text("你好"), Account: "acc"}
}

// reportLatency reports the p50 and p99 of durations in microseconds.
func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)*50/100].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(d[min(len(d)*99/100, len(d)-1)].Nanoseconds())/1e3, "p99-µs")
}

func BenchmarkCall(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		p := &probe{name: "probe"}
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			req := benchRequest()
			req.Action, req.Params = "echo", map[string]string{"prefix": "echo: "}
			if _, err := p.Handle(ctx, req); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
	b.Run("plugin", func(b *testing.B) {
		m, _ := startManager(b, plugins.Config{Dir: pluginDir(b, true, "probe")}, newMemHost())
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			if _, err := m.Call(ctx, "probe", "echo", benchRequest()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportLatency(b, lat)
	})
}

// BenchmarkThroughput8 runs 8 concurrent callers and reports actions/s.
func BenchmarkThroughput8(b *testing.B) {
	const callers = 8
	run := func(b *testing.B, call func(ctx context.Context) error) {
		ctx := context.Background()
		var wg sync.WaitGroup
		work := make(chan struct{}, b.N)
		for range b.N {
			work <- struct{}{}
		}
		close(work)
		b.ResetTimer()
		start := time.Now()
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					if err := call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "actions/s")
	}
	b.Run("direct", func(b *testing.B) {
		p := &probe{name: "probe"}
		run(b, func(ctx context.Context) error {
			req := benchRequest()
			req.Action, req.Params = "echo", map[string]string{"prefix": "echo: "}
			_, err := p.Handle(ctx, req)
			return err
		})
	})
	b.Run("plugin", func(b *testing.B) {
		m, _ := startManager(b, plugins.Config{Dir: pluginDir(b, true, "probe")}, newMemHost())
		run(b, func(ctx context.Context) error {
			_, err := m.Call(ctx, "probe", "echo", benchRequest())
			return err
		})
	})
}

// BenchmarkStart measures starting one pinned plugin until it is ready:
// checksum, process start, mTLS handshake, host callback attach, Describe.
func BenchmarkStart(b *testing.B) {
	dir := pluginDir(b, true, "probe")
	log, _ := testLogger(b)
	var total time.Duration
	for b.Loop() {
		m, err := plugins.New(plugins.Config{Dir: dir}, newMemHost(), log)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if inf := m.List()[0]; inf.State != plugins.StateReady {
			b.Fatalf("not ready: %+v", inf)
		}
		b.StopTimer()
		m.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/start")
}

// BenchmarkRecover kills the plugin process and measures the time until a
// call succeeds again, with the default first restart delay (100ms) each
// time: backoff growth and quarantine are turned off to measure every crash
// as a first one.
func BenchmarkRecover(b *testing.B) {
	cfg := plugins.Config{
		Dir:               pluginDir(b, true, "probe"),
		RestartBackoff:    100 * time.Millisecond,
		MaxRestartBackoff: 100 * time.Millisecond,
		QuarantineAfter:   1 << 30,
	}
	m, logs := startManager(b, cfg, newMemHost())
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		if len(lat) > 0 && lat[len(lat)-1] > time.Second {
			b.Logf("slow recovery (%s):\n%s", lat[len(lat)-1], logs)
		}
		logs.Reset()
		pid := m.List()[0].PID
		start := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		for {
			if err := m.WaitReady(ctx, "probe"); err != nil {
				b.Fatal(err)
			}
			if m.List()[0].PID == pid {
				// Still the dead process: the Manager is about to notice.
				time.Sleep(time.Millisecond)
				continue
			}
			if _, err := m.Call(ctx, "probe", "echo", benchRequest()); err == nil {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms-back")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms-back")
}
