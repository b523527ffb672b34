package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// InstanceInfo describes one login instance.
type InstanceInfo struct {
	WID     string `json:"wId"`
	WcID    string `json:"wcId"`
	Member  string `json:"member"`
	State   string `json:"state"` // "pending", "online" or "offline"
	KeyBuff string `json:"keyBuff"`
	// Confirmed is true once the QR code was scanned.
	Confirmed bool      `json:"confirmed"`
	Created   time.Time `json:"created"`
}

func (in *instance) info() InstanceInfo {
	in.mu.Lock()
	defer in.mu.Unlock()
	return InstanceInfo{WID: in.wID, WcID: in.wcID, Member: in.owner.Account, State: in.state.String(),
		KeyBuff: in.keyBuff, Confirmed: in.isConfirmed, Created: in.created}
}

// Instances returns every login instance, oldest first.
func (u *Upstream) Instances() []InstanceInfo {
	u.mu.RLock()
	list := make([]*instance, 0, len(u.instances))
	for _, in := range u.instances {
		list = append(list, in)
	}
	u.mu.RUnlock()
	out := make([]InstanceInfo, len(list))
	for i, in := range list {
		out[i] = in.info()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Instance returns the instance wID.
func (u *Upstream) Instance(wID string) (InstanceInfo, bool) {
	u.mu.RLock()
	in := u.instances[wID]
	u.mu.RUnlock()
	if in == nil {
		return InstanceInfo{}, false
	}
	return in.info(), true
}

// PendingScans returns the instances whose QR code awaits a scan.
func (u *Upstream) PendingScans() []string {
	var out []string
	for _, in := range u.Instances() {
		if in.State == "pending" && !in.Confirmed {
			out = append(out, in.WID)
		}
	}
	return out
}

func (u *Upstream) instance(wID string) (*instance, error) {
	u.mu.RLock()
	in := u.instances[wID]
	u.mu.RUnlock()
	if in == nil {
		return nil, fmt.Errorf("sim: instance %q: %w", wID, errUnknown)
	}
	return in, nil
}

// ConfirmScan confirms the pending QR scan of instance wID, as the human
// would on the phone: its /getIPadLoginInfo answers. The account is the
// wcId given to /iPadLogin, or a new one.
func (u *Upstream) ConfirmScan(wID string) error { return u.ConfirmScanAs(wID, "") }

// ConfirmScanAs confirms the pending QR scan of instance wID by WeChat
// account wcID.
func (u *Upstream) ConfirmScanAs(wID, wcID string) error {
	in, err := u.instance(wID)
	if err != nil {
		return err
	}
	if !in.confirm(wcID) {
		return fmt.Errorf("sim: instance %q: no scan is pending", wID)
	}
	u.log.Info("scan confirmed", "wId", wID, "wcId", wcID)
	return u.save()
}

// ScriptLogin sets the steps instance wID goes through after its scan,
// replacing any it had.
func (u *Upstream) ScriptLogin(wID string, steps ...LoginStep) error {
	if err := validSteps(steps); err != nil {
		return err
	}
	in, err := u.instance(wID)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.script = slices.Clone(steps)
	in.mu.Unlock()
	return nil
}

// SetLoginScript sets the steps every later login goes through after its
// scan.
func (u *Upstream) SetLoginScript(steps ...LoginStep) error {
	if err := validSteps(steps); err != nil {
		return err
	}
	u.mu.Lock()
	u.script = slices.Clone(steps)
	u.mu.Unlock()
	return nil
}

func validSteps(steps []LoginStep) error {
	for _, s := range steps {
		if s != StepSlider && s != StepVerifyCode {
			return fmt.Errorf("sim: login step %q: want %q or %q", s, StepSlider, StepVerifyCode)
		}
	}
	return nil
}

// Kick takes instance wID offline, as when WeChat logs the iPad out: every
// later call with it is refused as offline, and /isOnline answers 1001.
func (u *Upstream) Kick(wID string) error {
	in, err := u.instance(wID)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.state = stateOffline
	in.mu.Unlock()
	u.log.Info("instance kicked", "wId", wID)
	return u.save()
}

// ExpireToken expires a token of any of the three APIs (a member
// Authorization, an access or refresh token, an app-key token). It reports
// whether the token was known.
func (u *Upstream) ExpireToken(token string) bool {
	u.mu.Lock()
	m := u.tokens[token]
	if m != nil {
		m.expired = true
	}
	u.mu.Unlock()
	ok := m != nil || u.mobile.expire(token) || u.appkey.expire(token)
	if ok {
		u.log.Info("token expired")
		u.saveOrLog()
	}
	return ok
}

// MemberToken returns the current token of a member account, "" if it has
// not logged in.
func (u *Upstream) MemberToken(account string) string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if m := u.members[account]; m != nil {
		return m.token
	}
	return ""
}

// AddMember adds a wkteam member account, or replaces its password and
// status.
func (u *Upstream) AddMember(m Member) {
	u.mu.Lock()
	if old := u.members[m.Account]; old != nil {
		old.Member = m
	} else {
		u.members[m.Account] = &member{Member: m}
	}
	u.mu.Unlock()
	u.saveOrLog()
}

// Sent returns every message sent so far through /privateSend and
// /sendText, oldest first.
func (u *Upstream) Sent() []Sent {
	u.sentMu.Lock()
	defer u.sentMu.Unlock()
	return slices.Clone(u.sent)
}

// ClearSent forgets the messages sent so far.
func (u *Upstream) ClearSent() {
	u.sentMu.Lock()
	u.sent = nil
	u.sentMu.Unlock()
	u.saveOrLog()
}

// saveOrLog saves the state after a change made through a Go call that
// returns no error, logging a failure.
func (u *Upstream) saveOrLog() {
	if err := u.save(); err != nil {
		u.log.Error("cannot save the simulator state", "err", err)
	}
}

// WaitSent waits until at least n messages have been sent, and returns
// them all.
func (u *Upstream) WaitSent(ctx context.Context, n int) ([]Sent, error) {
	for {
		u.sentMu.Lock()
		if len(u.sent) >= n {
			out := slices.Clone(u.sent)
			u.sentMu.Unlock()
			return out, nil
		}
		ch := u.sentSignal
		u.sentMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("sim: waiting for %d sent messages: %w", n, ctx.Err())
		}
	}
}

// WcID returns the WeChat account instance wID is logged in as.
func (u *Upstream) WcID(wID string) (string, bool) {
	info, ok := u.Instance(wID)
	return info.WcID, ok && info.WcID != ""
}

// controlHelp is the answer of GET /_sim/.
const controlHelp = `finderbot simulated upstream: control API (JSON in, JSON out)

GET    /_sim/state                 members, instances (wId, wcId, state, keyBuff), faults
POST   /_sim/inject                {"wcId"|"wId": "...", "text": "哈喽"}                  a text from a stranger
                                   (neither wcId nor wId: the only account)
                                   {"wcId"|"wId": "...", "messages": [{"type": "text"|"image"|"system"|<MsgType>,
                                     "content": "...", "from": "...", "to": "...", "session": "...",
                                     "fromSelf": false, "id": "<NewMsgId>"}]}
GET    /_sim/sent                  what /privateSend and /sendText sent, with every field and the wId
DELETE /_sim/sent                  forget it
POST   /_sim/confirm               {"wId": "...", "wcId": "(optional) account that scans"}
POST   /_sim/script                {"wId": "(optional; none = every later login)", "steps": ["slider", "verify_code"]}
POST   /_sim/kick                  {"wId": "..."}                     take an instance offline
POST   /_sim/kick-device           {"mobile": "..."}                  token API: another device logged in
POST   /_sim/expire                {"token": "..."}                   expire any token of the three APIs
GET    /_sim/appkey/token?token=   state of an app-key token: valid, expired, kicked, unknown
POST   /_sim/faults                {"endpoint": "/syncFinder", "kind": "latency"|"refuse"|"status"|"malformed"|
                                     "accepted_malformed"|"truncated"|"late"|"duplicate"|"repeat_id"|"bad_id",
                                     "rate": 0.5, "count": 3, "latency": "2s", "status": 502, "duplicates": 3}
                                   refuse, status, malformed: the call is not performed; accepted_malformed,
                                   truncated, late: it is, then the answer is spoilt, cut, or held for latency
DELETE /_sim/faults                remove every fault;  DELETE /_sim/faults/{id} removes one
`

type controlFault struct {
	Endpoint   string    `json:"endpoint"`
	Kind       FaultKind `json:"kind"`
	Rate       float64   `json:"rate"`
	Count      int       `json:"count"`
	Latency    string    `json:"latency"`
	Status     int       `json:"status"`
	Duplicates int       `json:"duplicates"`
}

type controlMessage struct {
	Type     json.RawMessage `json:"type"`
	Content  string          `json:"content"`
	Text     string          `json:"text"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Session  string          `json:"session"`
	FromSelf bool            `json:"fromSelf"`
	ID       json.Number     `json:"id"`
}

func (cm *controlMessage) message() (Message, error) {
	m := Message{Content: cm.Content, From: cm.From, To: cm.To, Session: cm.Session, FromSelf: cm.FromSelf}
	if m.Content == "" {
		m.Content = cm.Text
	}
	if cm.ID != "" {
		id, err := strconv.ParseUint(string(cm.ID), 10, 64)
		if err != nil {
			return m, fmt.Errorf("id %q: want an unsigned integer", cm.ID)
		}
		m.ID = id
	}
	var name string
	switch {
	case len(cm.Type) == 0:
		name = "text"
	case json.Unmarshal(cm.Type, &name) == nil:
	case json.Unmarshal(cm.Type, &m.Type) == nil:
		return m, nil
	default:
		return m, fmt.Errorf("type %s: want a name or a MsgType number", cm.Type)
	}
	switch name {
	case "text":
		m.Type = TypeText
	case "image":
		img := Image(m.From)
		m.Type = TypeImage
		if m.Content == "" {
			m.Content = img.Content
		}
	case "system":
		m.Type = TypeSystem
		if m.Content == "" {
			m.Content = LiveClosed(strconv.FormatUint(randUint64()>>1, 10), strconv.FormatUint(randUint64()>>1, 10)).Content
		}
	default:
		return m, fmt.Errorf("type %q: want text, image, system or a MsgType number", name)
	}
	return m, nil
}

func (u *Upstream) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_sim/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, http.StatusOK, "text/plain; charset=utf-8", []byte(controlHelp))
	})
	m.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		u.mu.RLock()
		members := slices.Sorted(maps.Keys(u.members))
		u.mu.RUnlock()
		ctlOK(w, map[string]any{"members": members, "instances": u.Instances(), "faults": u.Faults()})
	})
	m.HandleFunc("POST /_sim/inject", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			WcID     string           `json:"wcId"`
			WID      string           `json:"wId"`
			Text     string           `json:"text"`
			Messages []controlMessage `json:"messages"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		wcID := req.WcID
		if wcID == "" && req.WID != "" {
			id, ok := u.WcID(req.WID)
			if !ok {
				ctlFail(w, http.StatusNotFound, fmt.Sprintf("wId %q is not logged in", req.WID))
				return
			}
			wcID = id
		}
		if wcID == "" {
			id, err := u.onlyAccount()
			if err != nil {
				ctlFail(w, http.StatusBadRequest, `give "wcId" or "wId": `+err.Error())
				return
			}
			wcID = id
		}
		var msgs []Message
		if req.Text != "" {
			msgs = append(msgs, Text("", req.Text))
		}
		for i := range req.Messages {
			msg, err := req.Messages[i].message()
			if err != nil {
				ctlFail(w, http.StatusBadRequest, fmt.Sprintf("messages[%d]: %v", i, err))
				return
			}
			msgs = append(msgs, msg)
		}
		if len(msgs) == 0 {
			ctlFail(w, http.StatusBadRequest, `give "text" or "messages"`)
			return
		}
		out, err := u.Inject(wcID, msgs...)
		if err != nil {
			ctlFail(w, http.StatusBadRequest, err.Error())
			return
		}
		u.log.Info("injected", "wcId", wcID, "count", len(out))
		ctlOK(w, map[string]any{"wcId": wcID, "messages": out})
	})
	m.HandleFunc("GET /_sim/sent", func(w http.ResponseWriter, r *http.Request) {
		sent := u.Sent()
		if sent == nil {
			sent = []Sent{}
		}
		ctlOK(w, map[string]any{"sent": sent})
	})
	m.HandleFunc("DELETE /_sim/sent", func(w http.ResponseWriter, r *http.Request) {
		u.ClearSent()
		ctlOK(w, map[string]any{})
	})
	m.HandleFunc("POST /_sim/confirm", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			WID  string `json:"wId"`
			WcID string `json:"wcId"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		if req.WID == "" {
			pending := u.PendingScans()
			if len(pending) != 1 {
				ctlFail(w, http.StatusBadRequest, fmt.Sprintf(`give "wId": %d scans are pending`, len(pending)))
				return
			}
			req.WID = pending[0]
		}
		ctlErr(w, u.ConfirmScanAs(req.WID, req.WcID), map[string]any{"wId": req.WID})
	})
	m.HandleFunc("POST /_sim/script", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			WID   string      `json:"wId"`
			Steps []LoginStep `json:"steps"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		if req.WID == "" {
			ctlErr(w, u.SetLoginScript(req.Steps...), map[string]any{})
			return
		}
		ctlErr(w, u.ScriptLogin(req.WID, req.Steps...), map[string]any{})
	})
	m.HandleFunc("POST /_sim/kick", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			WID string `json:"wId"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		ctlErr(w, u.Kick(req.WID), map[string]any{})
	})
	m.HandleFunc("POST /_sim/kick-device", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Mobile string `json:"mobile"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		if !u.KickDevice(req.Mobile) {
			ctlFail(w, http.StatusNotFound, fmt.Sprintf("mobile %q has no session", req.Mobile))
			return
		}
		ctlOK(w, map[string]any{})
	})
	m.HandleFunc("POST /_sim/expire", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token string `json:"token"`
		}
		if !ctlRead(w, r, &req) {
			return
		}
		if !u.ExpireToken(req.Token) {
			ctlFail(w, http.StatusNotFound, "unknown token")
			return
		}
		ctlOK(w, map[string]any{})
	})
	m.HandleFunc("GET /_sim/appkey/token", func(w http.ResponseWriter, r *http.Request) {
		ctlOK(w, map[string]any{"state": u.AppKeyTokenState(r.URL.Query().Get("token"))})
	})
	m.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var req controlFault
		if !ctlRead(w, r, &req) {
			return
		}
		f := Fault{Endpoint: req.Endpoint, Kind: req.Kind, Rate: req.Rate, Count: req.Count, Status: req.Status, Duplicates: req.Duplicates}
		if req.Latency != "" {
			d, err := time.ParseDuration(req.Latency)
			if err != nil {
				ctlFail(w, http.StatusBadRequest, fmt.Sprintf("latency %q: want a duration such as \"2s\"", req.Latency))
				return
			}
			f.Latency = d
		}
		id, err := u.AddFault(f)
		ctlErr(w, err, map[string]any{"id": id})
	})
	m.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		u.ClearFaults()
		ctlOK(w, map[string]any{})
	})
	m.HandleFunc("DELETE /_sim/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || !u.RemoveFault(id) {
			ctlFail(w, http.StatusNotFound, fmt.Sprintf("no fault %q", r.PathValue("id")))
			return
		}
		ctlOK(w, map[string]any{})
	})
	m.HandleFunc("GET /_sim/qr/{wId}", func(w http.ResponseWriter, r *http.Request) {
		wID := r.PathValue("wId")
		body := fmt.Sprintf("simulated WeChat login QR code for instance %s\nscan it with:\n  curl -s -X POST http://%s/_sim/confirm -H 'Content-Type: application/json' -d '{\"wId\":%q}'\n",
			wID, r.Host, wID)
		writeBody(w, http.StatusOK, "text/plain; charset=utf-8", []byte(body))
	})
	m.HandleFunc("GET /_sim/captcha/", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, http.StatusOK, "text/plain; charset=utf-8",
			[]byte("simulated slider captcha: it counts as solved; call /getIPadLoginInfo again\n"))
	})
}

func ctlRead(w http.ResponseWriter, r *http.Request, v any) bool {
	return readJSON(w, r, v, func(w http.ResponseWriter, msg string) {
		ctlFail(w, http.StatusBadRequest, strings.TrimPrefix(msg, "参数错误: "))
	})
}

func ctlOK(w http.ResponseWriter, v map[string]any) {
	v["ok"] = true
	writeBody(w, http.StatusOK, "application/json", append(marshal(v), '\n'))
}

func ctlFail(w http.ResponseWriter, status int, msg string) {
	writeBody(w, status, "application/json", append(marshal(map[string]any{"ok": false, "error": msg}), '\n'))
}

func ctlErr(w http.ResponseWriter, err error, v map[string]any) {
	if err != nil {
		ctlFail(w, http.StatusBadRequest, err.Error())
		return
	}
	ctlOK(w, v)
}
