package rules

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Account is the account name the rules see.
	Account string
	// Now, when set, is the clock for every message; otherwise each
	// message is evaluated at its own time, as when it arrived.
	Now time.Time
	// Explain also shows, for every rule that did not match, why.
	Explain bool
}

// DecodeReply decodes a recorded /syncFinder reply: either the whole reply
// ({"code": "1000", "message": ..., "data": {...}}) or its data object.
func DecodeReply(data []byte) (*upstream.Page, error) {
	var env struct {
		Code    *json.RawMessage `json:"code"`
		Message string           `json:"message"`
		Data    json.RawMessage  `json:"data"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("rules: replay: %w", err)
	}
	if env.Code == nil {
		return upstream.DecodePage(data)
	}
	code := strings.Trim(string(*env.Code), `"`)
	if code != "1000" && code != "0" {
		return nil, fmt.Errorf("rules: replay: the recorded reply is a failure (code %s: %s)", code, env.Message)
	}
	if len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return nil, fmt.Errorf("rules: replay: the recorded reply has no data")
	}
	return upstream.DecodePage(env.Data)
}

// Replay runs every message of a recorded page through the set, the way the
// daemon would (cooldowns included), and writes per message the rules that
// fired and their actions.
func Replay(w io.Writer, set *Set, page *upstream.Page, o ReplayOptions) {
	cd := NewCooldowns(0)
	fired := 0
	for i := range page.Messages {
		m := &page.Messages[i]
		now := m.Time
		if !o.Now.IsZero() {
			now = o.Now
		}
		fmt.Fprintf(w, "#%d %s\n", i+1, describe(m, set.Location()))
		acts := set.Match(nil, m, o.Account, now, cd)
		fired += len(acts)
		if !o.Explain {
			for _, a := range acts {
				fmt.Fprintf(w, "    => %s\n", a)
			}
			if len(acts) == 0 {
				fmt.Fprintf(w, "    (no rule fired)\n")
			}
			continue
		}
		// The actions above count cooldowns; the explanation shows every
		// rule's own verdict.
		firedBy := map[string]bool{}
		for _, a := range acts {
			firedBy[a.Rule] = true
		}
		for _, t := range set.Explain(m, o.Account, now) {
			switch {
			case t.Skipped != "":
				fmt.Fprintf(w, "    -  %s: %s\n", t.Rule, t.Reason())
			case t.Err != nil:
				fmt.Fprintf(w, "    !  %s: %s\n", t.Rule, t.Reason())
			case t.Matched && firedBy[t.Rule]:
				for _, a := range t.Actions {
					fmt.Fprintf(w, "    => %s\n", a)
				}
			case t.Matched:
				fmt.Fprintf(w, "    ~  %s: matched, but is cooling down in this conversation\n", t.Rule)
			default:
				fmt.Fprintf(w, "    x  %s: %s\n", t.Rule, t.Reason())
			}
		}
	}
	fmt.Fprintf(w, "%d messages, %d actions\n", len(page.Messages), fired)
}

// describe summarises a message on one line.
func describe(m *sdk.Message, loc *time.Location) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", m.Time.In(loc).Format("2006-01-02 15:04:05"), m.Type)
	switch {
	case m.Type == sdk.TypeText:
		fmt.Fprintf(&b, " %s", show(m.Text))
	case m.Sys != nil:
		fmt.Fprintf(&b, " <%s>", m.Sys.Type)
	}
	if m.From != "" {
		fmt.Fprintf(&b, " from %s", m.From)
	}
	if m.FromSelf {
		b.WriteString(" (sent by this account)")
	}
	return b.String()
}
