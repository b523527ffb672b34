package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
)

// InjectFile adds messages to the stream of WeChat account wcID ("" for the
// simulator's only account) of the simulator whose state is at path, and
// returns the account and the messages as stored. When a process serves
// that simulator (a daemon with base_url: sim, or finderbot sim --state),
// they go through its control API; otherwise into the file, for the
// simulator to serve once it starts again — as a real upstream keeps the
// messages that arrive while the daemon is down.
func InjectFile(ctx context.Context, path, wcID string, msgs ...Message) (string, []Message, error) {
	st, err := OpenState(path)
	if errors.Is(err, ErrStateInUse) {
		return injectRunning(ctx, path, wcID, msgs)
	}
	if err != nil {
		return "", nil, err
	}
	defer st.Close()
	if st.snap == nil {
		return "", nil, fmt.Errorf("sim: no simulator state at %s: start the simulator once (finderbot run with base_url: sim) and log an account in first", path)
	}
	u := New(Options{State: st})
	if wcID == "" {
		if wcID, err = u.onlyAccount(); err != nil {
			return "", nil, fmt.Errorf("sim: %s: %w", path, err)
		}
	} else if !u.hasAccount(wcID) {
		return "", nil, fmt.Errorf("sim: %s: no account %q (accounts: %s)", path, wcID, strings.Join(u.accountIDs(), ", "))
	}
	out, err := u.Inject(wcID, msgs...)
	return wcID, out, err
}

// injectRunning injects through the control API of the process holding
// the state at path.
func injectRunning(ctx context.Context, path, wcID string, msgs []Message) (string, []Message, error) {
	b, err := os.ReadFile(path + ".lock")
	url := strings.TrimSpace(string(b))
	if err != nil || url == "" {
		return "", nil, fmt.Errorf("sim: the simulator state %s is in use by a process that does not say where it serves yet; try again", path)
	}
	type ctlMsg struct {
		Type     int    `json:"type,omitempty"`
		Content  string `json:"content"`
		From     string `json:"from,omitempty"`
		To       string `json:"to,omitempty"`
		Session  string `json:"session,omitempty"`
		FromSelf bool   `json:"fromSelf,omitempty"`
		ID       uint64 `json:"id,omitempty,string"`
	}
	req := struct {
		WcID     string   `json:"wcId,omitempty"`
		Messages []ctlMsg `json:"messages"`
	}{WcID: wcID}
	for _, m := range msgs {
		req.Messages = append(req.Messages, ctlMsg{Type: m.Type, Content: m.Content, From: m.From, To: m.To, Session: m.Session, FromSelf: m.FromSelf, ID: m.ID})
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/_sim/inject", bytes.NewReader(marshal(req)))
	if err != nil {
		return "", nil, fmt.Errorf("sim: inject through %s: %w", url, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return "", nil, fmt.Errorf("sim: inject through the running simulator: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestBody))
	if err != nil {
		return "", nil, fmt.Errorf("sim: inject through %s: %w", url, err)
	}
	var reply struct {
		OK       bool      `json:"ok"`
		Error    string    `json:"error"`
		WcID     string    `json:"wcId"`
		Messages []Message `json:"messages"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return "", nil, fmt.Errorf("sim: inject through %s: %s: %q", url, resp.Status, body)
	}
	if !reply.OK {
		return "", nil, fmt.Errorf("sim: inject through %s: %s", url, reply.Error)
	}
	return reply.WcID, reply.Messages, nil
}

// accountIDs returns the wcIds of the simulator's WeChat accounts, sorted.
func (u *Upstream) accountIDs() []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return slices.Sorted(maps.Keys(u.accounts))
}

func (u *Upstream) hasAccount(wcID string) bool {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.accounts[wcID] != nil
}

// onlyAccount returns the wcId of the simulator's one WeChat account, for
// an injection that names none.
func (u *Upstream) onlyAccount() (string, error) {
	ids := u.accountIDs()
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", errors.New("no WeChat account has logged in yet")
	}
	return "", fmt.Errorf("%d WeChat accounts (%s): name one by its wcId", len(ids), strings.Join(ids, ", "))
}
