package engine

import (
	"log/slog"
	"maps"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/session"
)

// redactingLogger returns log filtered through a Set of secrets, and the
// Set. The Set of a logger made by NewLogger is reused, so that its
// caller's own lines are filtered with the secrets the daemon learns; any
// other logger is wrapped with a new Set.
func redactingLogger(log *slog.Logger) (*slog.Logger, *redact.Set) {
	if h, ok := log.Handler().(*redact.Handler); ok {
		return log, h.Secrets()
	}
	s := redact.New()
	return slog.New(redact.NewHandler(log.Handler(), s)), s
}

// redactEvent hides the secrets in a session event before it is logged or
// handed to the event rules, whose actions may send its text on.
func (d *Daemon) redactEvent(ev session.Event) session.Event {
	ev.Message = d.secrets.String(ev.Message)
	if len(ev.Fields) > 0 {
		fields := maps.Clone(ev.Fields)
		for k, v := range fields {
			fields[k] = d.secrets.String(v)
		}
		ev.Fields = fields
	}
	return ev
}
