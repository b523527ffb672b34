package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/store"
)

// Status reports every account's session and sync state. It holds no
// secret: tokens and passwords never appear in it.
func (d *Daemon) Status() admin.Status {
	st := admin.Status{Started: d.started, Rules: d.rules.count(), Accounts: make([]admin.AccountStatus, 0, len(d.order))}
	backlogs := d.outbox.Backlogs(d.order) // under one lock, not one per account
	for i, name := range d.order {
		a := d.accounts[name]
		state, detail := a.keeper.State()
		as := admin.AccountStatus{Name: name, State: state, Detail: detail}
		as.OutboxDepth, as.InDoubt = backlogs[i].Queued, backlogs[i].InDoubt
		as.Paused = len(d.handoff.List(name, d.now()))
		if inst, ok := a.keeper.Current(); ok {
			as.WcID, as.WID = inst.WcID, inst.WID
		}
		a.mu.Lock()
		as.LastSync, as.LastError, as.Messages, as.Skipped = a.lastSync, a.lastErr, a.messages, a.skipped
		a.mu.Unlock()
		st.Accounts = append(st.Accounts, as)
	}
	st.Sessions, st.Plugins = d.sessionStatus(), d.pluginStatus()
	if d.cluster != nil {
		st.Cluster = d.cluster.status()
	}
	return st
}

// sessionStatus is the state of every session.
func (d *Daemon) sessionStatus() []admin.SessionStatus {
	var out []admin.SessionStatus
	for _, sc := range d.cfg.Sessions {
		s := d.sessions[sc.Name]
		state, detail := s.State()
		out = append(out, admin.SessionStatus{Name: sc.Name, Kind: s.Kind(), State: state, Detail: detail})
	}
	return out
}

// pluginStatus is the state of every plugin.
func (d *Daemon) pluginStatus() []admin.PluginStatus {
	if d.pluginManager == nil {
		return nil
	}
	var out []admin.PluginStatus
	for _, p := range d.pluginManager.List() {
		out = append(out, admin.PluginStatus{Name: p.Name, Version: p.Version, State: string(p.State), Problem: p.Problem, Restarts: p.Restarts,
			OutputDroppedLines: p.DroppedLines, OutputDroppedBytes: p.DroppedBytes})
	}
	return out
}

// AdminAddr returns the address the admin listener is bound to, or "".
func (d *Daemon) AdminAddr() string {
	if d.adminLn == nil {
		return ""
	}
	return d.adminLn.Addr().String()
}

// listenAdmin binds the admin listener. New does it before anything logs,
// so that an address in use is refused like any other start-up mistake.
func (d *Daemon) listenAdmin() error {
	if d.cfg.Admin.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("engine: admin listener: %w", err)
	}
	d.adminLn = ln
	d.closers = append(d.closers, func() error {
		if d.admin == nil {
			return ln.Close()
		}
		return nil
	})
	return nil
}

// startAdmin serves the admin API on the bound listener.
func (d *Daemon) startAdmin() {
	if d.adminLn == nil {
		return
	}
	d.admin = admin.New(adminBackend{d}, admin.Options{
		Token:   d.cfg.Admin.Token.Reveal(),
		Secrets: d.secrets,
		Metrics: d.metrics.reg,
		Limits:  d.opts.Admin,
		Logger:  d.log,
		Console: d.newConsole(d.adminLn),
	})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.admin.Serve(d.adminLn); err != nil && err != http.ErrServerClosed {
			d.log.Error("admin listener stopped", "err", err)
		}
	}()
}

// adminBackend is the daemon as the admin API sees it.
type adminBackend struct{ d *Daemon }

func (b adminBackend) Status() admin.Status { return b.d.Status() }

// NotOnline copies each keeper's current instance under that keeper's
// short-held lock and never reads the store.
func (b adminBackend) NotOnline() []string {
	var waiting []string
	for _, name := range b.d.order {
		if _, ok := b.d.accounts[name].keeper.Current(); !ok {
			waiting = append(waiting, name)
		}
	}
	return waiting
}

func (b adminBackend) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	return b.d.store.DeadLetters(ctx, limit)
}

func (b adminBackend) RetryDeadLetter(ctx context.Context, id uint64) (store.Item, error) {
	it, err := b.d.store.Revive(ctx, id)
	if err != nil {
		return store.Item{}, err
	}
	b.d.deadCounts.changed()
	b.d.outbox.Add([]store.Item{it})
	return it, nil
}

func (b adminBackend) DropDeadLetter(ctx context.Context, id uint64) error {
	err := b.d.store.DropDeadLetter(ctx, id)
	b.d.deadCounts.changed()
	return err
}

func (b adminBackend) InboundDeadLetters(ctx context.Context, limit int) ([]store.InboundDeadLetter, error) {
	return b.d.store.InboundDeadLetters(ctx, limit)
}

// liveStore is a store that can copy and check itself while it runs
// (store.Bolt).
type liveStore interface {
	Backup(ctx context.Context, w io.Writer, begin func(size int64)) (int64, error)
	Check(ctx context.Context) (store.Report, error)
}

func (b adminBackend) BackupStore(ctx context.Context, w io.Writer, begin func(size int64)) (int64, error) {
	ls, ok := b.d.store.(liveStore)
	if !ok {
		return 0, admin.ErrUnsupported
	}
	return ls.Backup(ctx, w, begin)
}

func (b adminBackend) CheckStore(ctx context.Context) (store.Report, error) {
	ls, ok := b.d.store.(liveStore)
	if !ok {
		return store.Report{}, admin.ErrUnsupported
	}
	return ls.Check(ctx)
}

// SubmitCode is the daemon's SubmitCode, with its errors as the admin API
// names them.
func (b adminBackend) SubmitCode(name, code string) error {
	err := b.d.SubmitCode(name, code)
	switch {
	case errors.Is(err, ErrUnknown):
		return admin.ErrUnknownSession
	case errors.Is(err, ErrNotNow):
		return admin.ErrNotWaiting
	}
	return err
}

func (b adminBackend) RestartPlugin(ctx context.Context, name string) error {
	if b.d.pluginManager == nil {
		return admin.ErrNoPlugins
	}
	return b.d.pluginManager.Restart(ctx, name)
}

func (b adminBackend) Paused() []store.Pause { return b.d.Paused("") }

func (b adminBackend) Resume(ctx context.Context, account, conv string) error {
	if err := b.d.Resume(ctx, account, conv); errors.Is(err, ErrNotPaused) {
		return admin.ErrNotPaused
	} else if err != nil {
		return err
	}
	return nil
}

func (b adminBackend) Reload() (int, error) {
	if err := b.d.Reload(); err != nil {
		return 0, err
	}
	return b.d.rules.count(), nil
}
