package engine

import (
	"context"
	"fmt"
	"net"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// startSim serves the simulated upstream on a loopback port for the life of
// the daemon (base_url: sim), with QR scans confirmed automatically, and
// returns its URL. One simulator serves every API configured as "sim".
func (d *Daemon) startSim() (string, error) {
	if d.simURL != "" {
		return d.simURL, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("engine: start the simulated upstream: %w", err)
	}
	u := sim.New(sim.Options{AutoConfirm: true, Logger: d.log.With("component", "sim")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := u.Serve(ctx, ln); err != nil {
			d.log.Error("simulated upstream stopped", "err", err)
		}
	}()
	d.closers = append(d.closers, func() error { cancel(); <-done; return nil })
	d.sim = u
	d.simURL = "http://" + ln.Addr().String()
	d.log.Info("simulated upstream started", "url", d.simURL)
	return d.simURL, nil
}

// Sim returns the in-process simulated upstream when base_url is "sim", or
// nil.
func (d *Daemon) Sim() *sim.Upstream { return d.sim }
