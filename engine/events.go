package engine

import (
	"fmt"
	"strings"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/plugins"
)

// Events returns the daemon's bus of events for people: session changes
// (the session events of accounts and sessions), rule reloads, plugin
// state changes and actions moved to the dead letters. Every message on it
// has had the daemon's secrets replaced, like its log.
func (d *Daemon) Events() *events.Bus { return d.events }

// publish puts an event on the bus, its secrets hidden.
func (d *Daemon) publish(kind, account, message string) {
	d.events.Publish(events.Event{Kind: kind, Account: account, Message: d.secrets.String(message)})
}

// publishSession tells the bus of a session event, already redacted:
// "online", "needs_scan: scan the QR code to log in", "kicked: …".
func (d *Daemon) publishSession(ev session.Event) {
	what := strings.TrimPrefix(ev.Type, "session.")
	msg := what
	if ev.Message != "" && ev.Message != what {
		msg += ": " + ev.Message
	}
	d.events.Publish(events.Event{Kind: events.KindSession, Account: ev.Session, Message: msg})
}

// publishPlugin tells the bus of a plugin's change of state; the plugin
// manager calls it (plugins.Config.OnStateChange).
func (d *Daemon) publishPlugin(plugin string, state plugins.State, problem string) {
	msg := string(state)
	if problem != "" {
		msg += ": " + problem
	}
	d.publish(events.KindPlugin, plugin, msg)
}

// publishDeadLetter tells the bus of an action given up on; the outbox
// calls it (outbox.Observer.Dead).
func (d *Daemon) publishDeadLetter(dl store.DeadLetter) {
	d.deadCounts.changed()
	it := dl.Item
	what := it.Kind
	if it.Rule != "" {
		what += " of rule " + it.Rule
	}
	doubt := ""
	if dl.InDoubt {
		doubt = " (in doubt: it may have been performed)"
	}
	d.publish(events.KindDeadLetter, it.Account, fmt.Sprintf("%s (item %d)%s: %s", what, it.ID, doubt, dl.Reason))
}
