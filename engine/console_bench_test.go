package engine

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
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
func BenchmarkConsoleOverview(b *testing.B) {
	const accounts = 10_000
	d, stop := startIdleAccounts(b, accounts, "127.0.0.1:0")
	defer stop()
	base := "http://" + d.AdminAddr()
	get := func() time.Duration {
		t0 := time.Now()
		resp, err := http.Get(base + "/fragments/overview")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n < 10_000 {
			b.Fatalf("overview: %d, %d bytes", resp.StatusCode, n)
		}
		return time.Since(t0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("event stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	var serve, update []time.Duration
	b.ResetTimer()
	for range b.N {
		serve = append(serve, get())
		// A change: the event reaches the open stream, and the page then
		// fetches the fragment again.
		t0 := time.Now()
		d.events.Publish(events.Event{Kind: events.KindReload, Message: "bench"})
		for lines.Scan() && !strings.HasPrefix(lines.Text(), "data:") {
		}
		get()
		update = append(update, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(percentile(serve, 50).Seconds()*1000, "serve-p50-ms")
	b.ReportMetric(p99(serve).Seconds()*1000, "serve-p99-ms")
	b.ReportMetric(p99(update).Seconds()*1000, "update-p99-ms")
}

// p99 is the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration { return percentile(ds, 99) }

// percentile is the p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*p/100)]
}
