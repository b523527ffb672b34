package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// streamEvent is an Event as the script reads it from the stream.
type streamEvent struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Clock   string `json:"clock"`
	Kind    string `json:"kind"`
	Account string `json:"account"`
	Message string `json:"message"`
}

// stream sends the Backend's events as Server-Sent Events until the client
// goes away. It is the console's only goroutine-holding work: one
// subscription and one ticker per open stream, none otherwise.
func (c *console) stream(w http.ResponseWriter, r *http.Request, v *view) {
	if c.streams.Add(1) > int64(c.opts.MaxStreams) {
		c.streams.Add(-1)
		http.Error(w, v.T("err.too_many_streams"), http.StatusServiceUnavailable)
		return
	}
	defer c.streams.Add(-1)

	ctx := r.Context()
	rc := http.NewResponseController(w)
	// A client that stops reading would block a write for good: the admin
	// server has no write timeout, so each write gets its own deadline.
	// ErrNotSupported (a writer without deadlines) leaves writes unbounded.
	send := func(format string, args ...any) error {
		_ = rc.SetWriteDeadline(time.Now().Add(2 * c.opts.Heartbeat))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	if r.Method == http.MethodHead {
		return // the headers say what a GET would stream
	}
	events := c.b.Subscribe(ctx)
	w.WriteHeader(http.StatusOK)
	if send("retry: 3000\n: connected\n\n") != nil {
		return
	}
	tick := time.NewTicker(c.opts.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			// JSON escapes newlines, so the data is one line.
			b, _ := json.Marshal(streamEvent{
				Seq: ev.Seq, Time: ev.Time.Format(time.RFC3339), Clock: clock(ev.Time),
				Kind: ev.Kind, Account: ev.Account, Message: ev.Message,
			})
			err = send("id: %d\ndata: %s\n\n", ev.Seq, b)
		case <-tick.C:
			err = send(": heartbeat\n\n")
		}
		if err != nil {
			return
		}
	}
}
