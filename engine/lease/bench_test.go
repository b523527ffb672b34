package lease_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/natstest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRenewal10k measures one renewal round of 10,000 account leases
// on a three-node cluster with three replicas, and reports the cost per
// account per minute at a 15 s TTL (a renewal every 5 s: 12 a minute): the
// CPU of this process (the daemon's side and the three servers, which run
// in it), and the bytes the daemon's connection sent and received.
func BenchmarkRenewal10k(b *testing.B) {
	const (
		accounts = 10_000
		ttl      = 15 * time.Second
		perMin   = float64(time.Minute / (ttl / 3))
	)
	ctx := context.Background()
	c := natstest.Start(b, 3)
	nc := c.Connect(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "BENCH_HOLDERS", TTL: ttl, History: 1, Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	// Every round finds every lease due: the clock moves a third of the
	// TTL between rounds.
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, err := lease.New(kv, lease.Options{Holder: "bench", TTL: ttl, Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range accounts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := m.Acquire(ctx, lease.Key("acct", fmt.Sprintf("acct%05d", i))); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	stats0, cpu0, start := nc.Stats(), cpuTime(), time.Now()
	rounds := 0
	for b.Loop() {
		mu.Lock()
		now = now.Add(ttl / 3)
		mu.Unlock()
		if err := m.RenewAll(ctx); err != nil {
			b.Fatal(err)
		}
		rounds++
	}
	elapsed, cpu, stats := time.Since(start), cpuTime()-cpu0, nc.Stats()
	renewals := float64(rounds * accounts)
	bytes := float64(stats.InBytes - stats0.InBytes + stats.OutBytes - stats0.OutBytes)
	b.ReportMetric(elapsed.Seconds()/float64(rounds), "s/round")
	b.ReportMetric(renewals/elapsed.Seconds(), "renewals/s")
	b.ReportMetric(float64(cpu.Microseconds())/renewals*perMin, "cpu_us/account/min")
	b.ReportMetric(bytes/renewals*perMin, "bytes/account/min")
	b.ReportMetric(elapsed.Seconds()/float64(rounds)/(ttl/3).Seconds()*100, "%_of_period")
}
