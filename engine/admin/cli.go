package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
)

// Target is the daemon a command acts on: the one at Addr when it is given
// (--addr), else the one admin.listen of the configuration at Config
// configures. Token (--token), when given, is sent instead of the
// configuration's admin.token.
type Target struct {
	Config string
	Addr   string
	Token  string
}

// Client returns a client of the target's admin API.
func (t Target) Client() (*Client, error) {
	var cfg *config.Config
	if t.Config != "" {
		var err error
		if cfg, err = config.Load(t.Config); err != nil {
			return nil, err
		}
	}
	token := t.Token
	if token == "" && cfg != nil {
		token = cfg.Admin.Token.Reveal()
	}
	switch {
	case t.Addr != "":
		return NewClient(t.Addr, token, "--addr")
	case cfg == nil:
		return nil, fmt.Errorf("admin: give --config FILE or --addr HOST:PORT")
	}
	c, err := ConfigClient(cfg)
	if err != nil {
		return nil, err
	}
	c.token = token
	return c, nil
}

// PrintStatus is `finderbot status`: the daemon's accounts, sessions and
// plugins as tables on out, or the body of /api/status as the daemon wrote
// it when asJSON.
func PrintStatus(ctx context.Context, t Target, out io.Writer, asJSON bool) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	if asJSON {
		data, err := c.StatusJSON(ctx)
		if err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	WriteStatus(out, c.Addr(), st, time.Now())
	return nil
}

// PrintHealth is `finderbot healthz`: it asks the daemon whether it is
// alive (GET /healthz) or, with ready, whether every account is online
// (GET /readyz), and prints the answer. Any other answer, or none, is an
// error, for a container's HEALTHCHECK in an image with no curl.
func PrintHealth(ctx context.Context, t Target, out io.Writer, ready bool) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	body, err := c.raw(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s%s: %s", c.Addr(), path, body)
	return err
}

// WriteStatus writes st, the status of the daemon at addr, as tables for a
// person; ages are counted to now.
func WriteStatus(out io.Writer, addr string, st Status, now time.Time) {
	fmt.Fprintf(out, "finderbot at %s: up %s, %d rules\n\n", addr, age(st.Started, now), st.Rules)
	var accounts table
	accounts.row("ACCOUNT", "STATE", "WCID", "LAST SYNC", "MESSAGES", "OUTBOX", "IN DOUBT", "SKIPPED", "PROBLEM")
	for _, a := range st.Accounts {
		problem := a.LastError
		if problem == "" {
			problem = a.Detail
		}
		accounts.row(a.Name, a.State, orDash(a.WcID), ago(a.LastSync, now), fmt.Sprint(a.Messages),
			fmt.Sprint(a.OutboxDepth), fmt.Sprint(a.InDoubt), fmt.Sprint(a.Skipped), problem)
	}
	accounts.write(out)
	if len(st.Sessions) > 0 {
		var sessions table
		sessions.row("SESSION", "KIND", "STATE", "DETAIL")
		for _, s := range st.Sessions {
			sessions.row(s.Name, s.Kind, s.State, s.Detail)
		}
		fmt.Fprintln(out)
		sessions.write(out)
	}
	if len(st.Plugins) > 0 {
		var plugins table
		plugins.row("PLUGIN", "VERSION", "STATE", "RESTARTS", "OUTPUT DROPPED", "PROBLEM")
		for _, p := range st.Plugins {
			plugins.row(p.Name, orDash(p.Version), p.State, fmt.Sprint(p.Restarts),
				fmt.Sprintf("%d lines, %d bytes", p.OutputDroppedLines, p.OutputDroppedBytes), p.Problem)
		}
		fmt.Fprintln(out)
		plugins.write(out)
	}
}

// PrintDeadLetters is `finderbot deadletters ls`: the dead letters as a
// table on out (limit as in Client.DeadLetters), or the body of
// /api/dead-letters when asJSON.
func PrintDeadLetters(ctx context.Context, t Target, out io.Writer, limit int, asJSON bool) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	if asJSON {
		data, err := c.DeadLettersJSON(ctx, limit)
		if err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	}
	dead, err := c.DeadLetters(ctx, limit)
	if err != nil {
		return err
	}
	WriteDeadLetters(out, dead)
	return nil
}

// WriteDeadLetters writes dead letters as a table for a person.
func WriteDeadLetters(out io.Writer, dead []store.DeadLetter) {
	if len(dead) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return
	}
	var t table
	t.row("ID", "KIND", "ACCOUNT", "SINCE", "IN DOUBT", "ACTION", "REASON")
	for _, d := range dead {
		doubt := "no"
		if d.InDoubt {
			doubt = "yes"
		}
		t.row(fmt.Sprint(d.Item.ID), d.Item.Kind, d.Item.Account, d.At.Local().Format(time.DateTime), doubt, action(d.Item), d.Reason)
	}
	t.write(out)
}

// action says in a few words what an item would do.
func action(it store.Item) string {
	switch it.Kind {
	case store.KindPlugin:
		return it.Plugin + "." + it.Action
	case store.KindSend:
		return shortQuote(it.Text) + " to " + it.To
	}
	return shortQuote(it.Text)
}

// RetryDeadLetter is `finderbot deadletters retry ID`.
func RetryDeadLetter(ctx context.Context, t Target, out io.Writer, id uint64) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	it, err := c.RetryDeadLetter(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dead letter %d queued again as item %d (%s, account %s)\n", id, it.ID, it.Kind, cell(it.Account))
	return nil
}

// RetryDeadLetters is `finderbot deadletters retry --all [--kind KIND]`.
func RetryDeadLetters(ctx context.Context, t Target, out io.Writer, kind string) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	items, err := c.RetryDeadLetters(ctx, kind)
	if err != nil {
		return err
	}
	what := "dead letters"
	if kind != "" {
		what = kind + " dead letters"
	}
	fmt.Fprintf(out, "%d %s queued again\n", len(items), what)
	return nil
}

// DropDeadLetter is `finderbot deadletters drop ID`.
func DropDeadLetter(ctx context.Context, t Target, out io.Writer, id uint64) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	if err := c.DropDeadLetter(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(out, "dead letter %d dropped\n", id)
	return nil
}

// Reload is `finderbot reload`: it prints "ok" and the rules in force, or
// returns the daemon's *ReloadError.
func Reload(ctx context.Context, t Target, out io.Writer) error {
	c, err := t.Client()
	if err != nil {
		return err
	}
	n, err := c.Reload(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ok: %d rules in force\n", n)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortQuote quotes a text cut to 40 characters.
func shortQuote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return strconv.Quote(s)
}

// age is how long ago t was, to the second.
func age(t, now time.Time) string {
	return now.Sub(t).Round(time.Second).String()
}

// ago is age for a moment that may never have come.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return age(t, now) + " ago"
}
