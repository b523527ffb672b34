package engine

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// SimStateFile is the file, in the state directory, where the in-process
// simulated upstream (base_url: sim) keeps its state, so that a restarted
// daemon finds its simulated account still logged in and the messages
// injected meanwhile (finderbot sim inject) waiting.
const SimStateFile = "sim.json"

// startSim serves the simulated upstream on a loopback port for the life of
// the daemon (base_url: sim), with QR scans confirmed automatically and its
// state kept in the state directory, and returns its URL. One simulator
// serves every API configured as "sim".
func (d *Daemon) startSim() (string, error) {
	if d.simURL != "" {
		return d.simURL, nil
	}
	st, err := sim.OpenState(filepath.Join(d.cfg.StateDir, SimStateFile))
	if err != nil {
		return "", fmt.Errorf("engine: start the simulated upstream: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return "", fmt.Errorf("engine: start the simulated upstream: %w", err)
	}
	url := "http://" + ln.Addr().String()
	if err := st.SetURL(url); err != nil {
		ln.Close()
		st.Close()
		return "", fmt.Errorf("engine: start the simulated upstream: %w", err)
	}
	u := sim.New(sim.Options{AutoConfirm: true, Logger: d.log.With("component", "sim"), State: st})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := u.Serve(ctx, ln); err != nil {
			d.log.Error("simulated upstream stopped", "err", err)
		}
	}()
	// The state is released only once nothing can change it any more.
	d.closers = append(d.closers, func() error { cancel(); <-done; return st.Close() })
	d.sim = u
	d.simURL = url
	d.log.Info("simulated upstream started", "url", d.simURL, "state", st.Path())
	return d.simURL, nil
}

// Sim returns the in-process simulated upstream when base_url is "sim", or
// nil.
func (d *Daemon) Sim() *sim.Upstream { return d.sim }
