package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/console"
	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/store"
)

// newConsole returns the browser console over the daemon, served on the
// admin listener ln with the admin API's token rules: without a token it is
// for a loopback listener only.
func (d *Daemon) newConsole(ln net.Listener) http.Handler {
	return console.New(&consoleBackend{d: d, admin: adminBackend{d}}, d.consoleOptions(ln))
}

// consoleOptions are the console's access settings for listener ln.
func (d *Daemon) consoleOptions(ln net.Listener) console.Options {
	loopback := false
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		loopback = tcp.IP.IsLoopback()
	}
	return console.Options{
		Token:        d.cfg.Admin.Token.Reveal(),
		Loopback:     loopback,
		TokenMatches: admin.TokenMatches,
	}
}

// consoleBackend is the daemon as the browser console sees it: views built
// from the same sources the admin API serves.
type consoleBackend struct {
	d     *Daemon
	admin adminBackend
}

var _ console.Backend = (*consoleBackend)(nil)

// Overview reads each account once, in one pass, and what the outbox and
// the rates hold for all of them at once: a browser on the Overview asks
// again at every change, and a daemon may hold ten thousand accounts.
func (c *consoleBackend) Overview(ctx context.Context) console.Overview {
	d := c.d
	dead := d.deadCounts.get(ctx, d.store)
	backlogs := d.outbox.Backlogs(d.order)
	in, out := d.rates.PerMinuteAll() // in the order of d.order
	ov := console.Overview{Started: d.started, Accounts: make([]console.Account, len(d.order))}
	for i, name := range d.order {
		a := d.accounts[name]
		state, detail, wcID := a.keeper.Brief()
		acc := console.Account{Name: name, State: state, Detail: detail, WcID: wcID,
			InPerMin: in[i], OutPerMin: out[i], Outbox: backlogs[i].Queued, InDoubt: backlogs[i].InDoubt, DeadLetters: dead[name]}
		a.mu.Lock()
		acc.LastSync = a.lastSync
		a.mu.Unlock()
		ov.Accounts[i] = acc
	}
	for _, s := range d.sessionStatus() {
		ov.Sessions = append(ov.Sessions, console.Session{Name: s.Name, Kind: s.Kind, State: s.State, Detail: s.Detail})
	}
	for _, p := range d.pluginStatus() {
		ov.Plugins = append(ov.Plugins, console.Plugin{Name: p.Name, Version: p.Version, State: p.State, Problem: p.Problem, Restarts: p.Restarts})
	}
	return ov
}

func (c *consoleBackend) AccountNames(context.Context) []string { return slices.Clone(c.d.order) }

func (c *consoleBackend) Logins(context.Context) []console.Login {
	states := c.d.Logins()
	out := make([]console.Login, len(states))
	for i, ls := range states {
		l := console.Login{
			Name: ls.Name, Kind: ls.Kind, State: ls.State, Detail: ls.Detail,
			QR: ls.QR != "", QRExpires: ls.QRExpires, SliderURL: ls.SliderURL, Online: ls.Online,
		}
		switch {
		case ls.AwaitsVerifyCode:
			l.NeedsCode, l.CodeKind = true, "verify"
		case ls.AwaitsSMSCode:
			l.NeedsCode, l.CodeKind = true, "sms"
		}
		out[i] = l
	}
	return out
}

func (c *consoleBackend) LoginQR(_ context.Context, name string) ([]byte, error) {
	png, err := c.d.LoginQR(name)
	return png, consoleErr(err)
}

func (c *consoleBackend) StartLogin(ctx context.Context, name string) error {
	return consoleErr(c.d.StartLogin(ctx, name))
}

func (c *consoleBackend) SubmitCode(_ context.Context, name, code string) error {
	return consoleErr(c.d.SubmitCode(name, code))
}

func (c *consoleBackend) Conversations(ctx context.Context, account string, limit int) ([]console.Conversation, error) {
	convs, err := c.d.Conversations(ctx, account, limit)
	if err != nil {
		return nil, consoleErr(err)
	}
	out := make([]console.Conversation, len(convs))
	for i, cv := range convs {
		v := console.Conversation{Account: account, ID: cv.ID}
		for _, m := range cv.Messages {
			if v.Peer == "" {
				// The peer is whoever the account talks with.
				if m.Own {
					v.Peer = m.To
				} else {
					v.Peer = m.From
				}
			}
			if m.Time.After(v.Last) {
				v.Last = m.Time
			}
			msg := console.Message{Time: m.Time, FromSelf: m.Own, Text: m.Text, Rules: m.Rules}
			for _, a := range m.Actions {
				msg.Actions = append(msg.Actions, describeAction(a))
			}
			v.Messages = append(v.Messages, msg)
		}
		out[i] = v
	}
	return out, nil
}

// describeAction is one line for an action a rule took on a message.
func describeAction(a store.LoggedAction) string {
	switch {
	case a.Plugin != "":
		return a.Kind + " " + a.Plugin
	case a.Text != "":
		return a.Kind + ": " + a.Text
	}
	return a.Kind
}

func (c *consoleBackend) Rules(context.Context) []console.Rule {
	stats := c.d.RuleStats()
	out := make([]console.Rule, len(stats))
	for i, r := range stats {
		out[i] = console.Rule{Name: r.Name, File: r.File, Line: r.Line, Kind: r.Kind, Matches: r.Matches, Failures: r.Failures}
	}
	return out
}

func (c *consoleBackend) TryMessage(ctx context.Context, account, text string) (console.Trial, error) {
	t, err := c.d.TryMessage(ctx, account, text)
	if err != nil {
		return console.Trial{}, consoleErr(err)
	}
	out := console.Trial{Answer: t.Answer}
	for _, v := range t.Rules {
		out.Verdicts = append(out.Verdicts, console.Verdict{Rule: v.Rule, Matched: v.Matched, Why: v.Why, Actions: v.Actions})
	}
	return out, nil
}

func (c *consoleBackend) RecentEvents(_ context.Context, n int) []console.Event {
	evs := c.d.Events().Recent(n)
	out := make([]console.Event, len(evs))
	for i, e := range evs {
		out[i] = consoleEvent(e)
	}
	return out
}

func (c *consoleBackend) Subscribe(ctx context.Context) <-chan console.Event {
	in := c.d.Events().Subscribe(ctx)
	out := make(chan console.Event, cap(in))
	go func() {
		defer close(out)
		for e := range in {
			select {
			case out <- consoleEvent(e):
			default: // a slow reader loses events, as the bus's own channel does
			}
		}
	}()
	return out
}

func consoleEvent(e events.Event) console.Event {
	return console.Event{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Account: e.Account, Message: e.Message}
}

// consoleErr turns the daemon's "no such account or session" into the
// console's ErrNotFound, so that the console answers 404.
func consoleErr(err error) error {
	if errors.Is(err, ErrUnknown) {
		return fmt.Errorf("%w: %w", console.ErrNotFound, err)
	}
	return err
}

func (c *consoleBackend) DeadLetters(ctx context.Context, limit int) ([]console.DeadLetter, error) {
	letters, err := c.d.store.DeadLetters(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]console.DeadLetter, len(letters))
	for i, dl := range letters {
		it := dl.Item
		text := it.Text
		if it.Kind == store.KindPlugin {
			text = it.Plugin + "." + it.Action
		}
		v := console.DeadLetter{
			ID: it.ID, Kind: it.Kind, Account: it.Account, To: it.To, Text: text,
			Reason: dl.Reason, InDoubt: dl.InDoubt, Created: it.Created,
		}
		// The store keeps the count of failed attempts and the last error,
		// not every attempt.
		if it.Attempts > 0 || it.LastError != "" {
			v.History = []console.Attempt{{Time: dl.At, Error: fmt.Sprintf("%d attempts; the last: %s", it.Attempts, it.LastError)}}
		}
		out[i] = v
	}
	return out, nil
}

func (c *consoleBackend) RetryDeadLetter(ctx context.Context, id uint64) error {
	_, err := c.admin.RetryDeadLetter(ctx, id)
	return notFound(err)
}

func (c *consoleBackend) DropDeadLetter(ctx context.Context, id uint64) error {
	return notFound(c.admin.DropDeadLetter(ctx, id))
}

func (c *consoleBackend) RetryDeadLetters(ctx context.Context, kind string) (int, error) {
	items, err := admin.RetryAll(ctx, c.admin, kind, c.d.log)
	return len(items), err
}

func (c *consoleBackend) Reload(context.Context) error { return c.d.Reload() }

// notFound turns the store's ErrNotFound into the console's.
func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", console.ErrNotFound, err)
	}
	return err
}
