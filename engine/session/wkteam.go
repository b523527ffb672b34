// Package session keeps logins alive. A Keeper owns one account's wkteam
// login instance: it reuses a stored instance while /isOnline says so, logs in
// again through /secondLogin or the QR-code flow when it is lost, backs off
// with jitter between failed attempts, and hands every caller the same
// current instance so that nothing is ever sent with a stale wId.
package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/mdp/qrterminal/v3"
)

// States of a session, as shown in the status API and metrics.
const (
	StateLoggedOut  = "logged_out"
	StateLoggingIn  = "logging_in"
	StateNeedsScan  = "needs_scan"
	StateNeedsCode  = "needs_code"
	StateSlider     = "needs_slider"
	StateOnline     = "online"
	StateBackingOff = "backing_off"
)

// Event types a session emits; rules with `on: event` see them.
const (
	EventOnline    = "session.online"
	EventOffline   = "session.offline"
	EventKicked    = "session.kicked"
	EventNeedsScan = "session.needs_scan"
	EventNeedsCode = "session.needs_code"
	EventFailed    = "session.failed"
)

// Event is a change in a session's life.
type Event struct {
	// Type is one of the Event* constants.
	Type string
	// Session is the session's name (the account name for wkteam).
	Session string
	// Message says what happened, for people.
	Message string
	// Fields carry details such as the QR code URL or the wcId.
	Fields map[string]string
}

// Instance is a logged-in wkteam instance: what every call needs.
type Instance struct {
	// Token is the API token (Authorization header).
	Token string
	// WID is the login instance id.
	WID string
	// WcID is the account's WeChat id.
	WcID string
	// Gen increases at every login, so that a report about an old instance
	// does not knock out a new one.
	Gen uint64
}

// API is what a Keeper needs of the wkteam client.
type API interface {
	MemberLogin(ctx context.Context, account, password string) (*upstream.Member, error)
	IsOnline(ctx context.Context, token, wID string) (bool, error)
	SecondLogin(ctx context.Context, token, wcID string) (string, error)
	IPadLogin(ctx context.Context, token string, req upstream.IPadLoginRequest) (*upstream.IPadLogin, error)
	GetIPadLoginInfo(ctx context.Context, token string, req upstream.LoginInfoRequest) (upstream.LoginOutcome, error)
}

var _ API = (*upstream.Client)(nil)

// Tokens holds the member token shared by every account of one API login.
type Tokens struct {
	api      API
	account  string
	password string

	mu    sync.Mutex
	token string
}

// NewTokens returns the token source for one /member/login.
func NewTokens(api API, account, password string) *Tokens {
	return &Tokens{api: api, account: account, password: password}
}

// Token returns the current member token, logging in when there is none.
func (t *Tokens) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" {
		return t.token, nil
	}
	m, err := t.api.MemberLogin(ctx, t.account, t.password)
	if err != nil {
		return "", fmt.Errorf("session: member login: %w", err)
	}
	if m.Status != upstream.MemberNormal {
		return "", fmt.Errorf("session: member login: the API account is %s", m.Status)
	}
	t.token = m.Token
	return t.token, nil
}

// Invalidate forgets token if it is still the current one, so the next
// Token call logs in again.
func (t *Tokens) Invalidate(token string) {
	t.mu.Lock()
	if t.token == token {
		t.token = ""
	}
	t.mu.Unlock()
}

// Options configure a Keeper.
type Options struct {
	// Name is the account name.
	Name string
	// WcID is the configured WeChat id, used when the store has none.
	WcID string
	// DeviceType and Proxy are passed to /iPadLogin.
	DeviceType string
	Proxy      int
	// OnlineCheck is how often /isOnline is asked while online.
	OnlineCheck time.Duration
	// MinBackoff and MaxBackoff bound the pause between failed logins.
	MinBackoff, MaxBackoff time.Duration
	// QR receives the login QR code drawn as text, in one Write (DrawQR),
	// so that a writer the log shares can keep log lines out of it; nil
	// draws nothing. Either way the code is in Login while it waits for a
	// scan.
	QR io.Writer
	// QRLifetime is how long a QR code can be scanned (default
	// DefaultQRLifetime), for Login's QRExpires.
	QRLifetime time.Duration
	// OnEvent is called for every session event, in order.
	OnEvent func(Event)
	// OnState is called with every state change.
	OnState func(state string)
	// OnSuspect is called when a call reports the instance offline.
	OnSuspect func()
	// Logger receives the keeper's log.
	Logger *slog.Logger
	// Secrets learns the member token and the verify codes people give,
	// before they can reach a log line or an error.
	Secrets Secrets
	// Fence, when set, is asked right before each call that makes a new
	// login (/secondLogin, /iPadLogin) whether this daemon still holds the
	// account; when it answers an error the call is not made.
	Fence func() error
}

// Keeper keeps one account logged in. It owns no goroutine: the daemon runs
// LoginLoop while the account is offline and Check now and then while it is
// online. All methods are safe to call from any goroutine.
type Keeper struct {
	api    API
	tokens *Tokens
	store  store.Store
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	cur     *Instance
	gen     uint64
	state   string
	detail  string
	facts   *loginFacts   // what a person needs to act on state; nil for none
	changed chan struct{} // closed and replaced at every change
	suspect uint64        // generation reported offline by a call

	codes chan string
	// wake cuts a backoff short (LoginNow). It exists only while the
	// keeper backs off: made afresh, with nothing pending, at each
	// backoff, since an idle account should not carry it.
	wake chan struct{}
}

// NewKeeper returns a Keeper for one account.
func NewKeeper(api API, tokens *Tokens, st store.Store, opts Options) *Keeper {
	if opts.OnlineCheck <= 0 {
		opts.OnlineCheck = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = time.Minute
	}
	if opts.DeviceType == "" {
		opts.DeviceType = "ipad"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QRLifetime <= 0 {
		opts.QRLifetime = DefaultQRLifetime
	}
	return &Keeper{
		api: api, tokens: tokens, store: st, opts: opts,
		log:     opts.Logger.With("account", opts.Name),
		state:   StateLoggedOut,
		changed: make(chan struct{}),
		codes:   make(chan string, 1),
	}
}

// Login returns what a person needs to see of the account's login: the
// state, the QR code to scan and its expiry, the slider URL, whether the
// verify code is awaited, whether it is online.
func (k *Keeper) Login() LoginState {
	k.mu.Lock()
	defer k.mu.Unlock()
	var f loginFacts
	if k.facts != nil {
		f = *k.facts
	}
	return LoginState{Name: k.opts.Name, Kind: KindWkteam, State: k.state, Detail: k.detail,
		QR: f.qr, QRExpires: f.qrExpires, SliderURL: f.slider,
		AwaitsVerifyCode: k.state == StateNeedsCode, Online: k.cur != nil}
}

// LoginNow cuts short the pause after a failed login, so that the next
// attempt begins at once. It reports false, doing nothing, when the
// keeper is not pausing: online, in the middle of an attempt (waiting for
// a scan or a code included), or with no LoginLoop running.
func (k *Keeper) LoginNow() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state != StateBackingOff || k.wake == nil {
		return false
	}
	wakeUp(k.wake)
	return true
}

// backoffWake is the channel that cuts the current backoff short.
func (k *Keeper) backoffWake() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.wake
}

// Name returns the account name.
func (k *Keeper) Name() string { return k.opts.Name }

// Kind returns KindWkteam.
func (k *Keeper) Kind() string { return KindWkteam }

// Token returns the wkteam API token (the member login's Authorization).
func (k *Keeper) Token(ctx context.Context) (string, error) {
	tok, err := k.tokens.Token(ctx)
	hide(k.opts.Secrets, tok)
	return tok, err
}

var _ Session = (*Keeper)(nil)

// Current returns the online instance, if any.
func (k *Keeper) Current() (Instance, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil {
		return Instance{}, false
	}
	return *k.cur, true
}

// State returns the session's state and a detail for people (a QR code URL,
// the last error).
func (k *Keeper) State() (state, detail string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state, k.detail
}

// Brief returns State and the wcId of the online instance ("" when
// offline) in one look, for a page that lists thousands of accounts.
func (k *Keeper) Brief() (state, detail, wcID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur != nil {
		wcID = k.cur.WcID
	}
	return k.state, k.detail, wcID
}

// Wait blocks until the account is online and returns the instance.
func (k *Keeper) Wait(ctx context.Context) (Instance, error) {
	for {
		k.mu.Lock()
		cur, ch := k.cur, k.changed
		k.mu.Unlock()
		if cur != nil {
			return *cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Instance{}, ctx.Err()
		}
	}
}

// ReportOffline tells the keeper that a call with the instance of generation
// gen was refused because the instance is offline. The keeper does not act
// on it by itself: OnSuspect is called so that the account's next step
// confirms with /isOnline (a refusal may be a passing fault).
func (k *Keeper) ReportOffline(gen uint64) {
	k.mu.Lock()
	k.suspect = gen
	k.mu.Unlock()
	if k.opts.OnSuspect != nil {
		k.opts.OnSuspect()
	}
}

// ReportUnauthorized tells the keeper that the member token was refused.
func (k *Keeper) ReportUnauthorized(token string) { k.tokens.Invalidate(token) }

// SubmitCode hands the keeper the verify code shown on the phone, when it
// waits for one. It reports whether the keeper was waiting.
func (k *Keeper) SubmitCode(code string) bool {
	hide(k.opts.Secrets, code)
	if st, _ := k.State(); st != StateNeedsCode {
		return false
	}
	select {
	case k.codes <- code:
		return true
	default:
		return false
	}
}

func (k *Keeper) setState(state, detail string) { k.setStateFacts(state, detail, loginFacts{}) }

// setStateFacts changes the state with the facts that go with it.
func (k *Keeper) setStateFacts(state, detail string, facts loginFacts) {
	k.mu.Lock()
	var had loginFacts
	if k.facts != nil {
		had = *k.facts
	}
	changed := k.state != state || k.detail != detail || had != facts
	k.state, k.detail, k.facts = state, detail, nil
	if facts != (loginFacts{}) {
		k.facts = &facts
	}
	// A wake-up asked for before this backoff is not for it.
	k.wake = nil
	if state == StateBackingOff {
		k.wake = make(chan struct{}, 1)
	}
	if changed {
		close(k.changed)
		k.changed = make(chan struct{})
	}
	k.mu.Unlock()
	if changed && k.opts.OnState != nil {
		k.opts.OnState(state)
	}
}

func (k *Keeper) setOnline(token, wID, wcID string) {
	k.mu.Lock()
	k.gen++
	k.cur = &Instance{Token: token, WID: wID, WcID: wcID, Gen: k.gen}
	k.mu.Unlock()
	k.setState(StateOnline, "")
}

func (k *Keeper) emit(typ, msg string, fields map[string]string) {
	if k.opts.OnEvent != nil {
		k.opts.OnEvent(Event{Type: typ, Session: k.opts.Name, Message: msg, Fields: fields})
	}
}

// LoginLoop brings the account online, retrying failed logins with
// exponential backoff and jitter, and returns the new instance. It returns
// only when online or when ctx is done. Callers run it in a goroutine of its
// own while the account is offline: a QR login can wait minutes for a human.
func (k *Keeper) LoginLoop(ctx context.Context) (Instance, error) {
	failures := 0
	for {
		inst, err := k.login(ctx)
		if err == nil {
			k.log.Info("online", "wid", inst.WID, "wcid", inst.WcID)
			k.emit(EventOnline, "online", map[string]string{"wid": inst.WID, "wcid": inst.WcID})
			return inst, nil
		}
		if ctx.Err() != nil {
			k.setState(StateLoggedOut, "stopped")
			return Instance{}, ctx.Err()
		}
		failures++
		wait := backoff(k.opts.MinBackoff, k.opts.MaxBackoff, failures)
		k.log.Warn("login failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		k.setState(StateBackingOff, err.Error())
		k.emit(EventFailed, err.Error(), nil)
		if !waitSaying(ctx, RealClock(), wait, k.backoffWake(), k.log, "waiting before the next login attempt") {
			k.setState(StateLoggedOut, "stopped")
			return Instance{}, ctx.Err()
		}
	}
}

// Check asks /isOnline whether inst is still online. When it is not, the
// instance is dropped (Current then reports none, and a session.kicked event
// fires) and Check returns false; the caller then runs LoginLoop. A failed
// check (the upstream unreachable) returns the error and keeps the instance.
func (k *Keeper) Check(ctx context.Context, inst Instance) (bool, error) {
	online, err := k.api.IsOnline(ctx, inst.Token, inst.WID)
	switch {
	case errors.Is(err, upstream.ErrUnauthorized):
		// The member token died; the instance may live on under a new one,
		// which the next login finds at once.
		k.tokens.Invalidate(inst.Token)
		k.drop(inst, EventOffline, "the API token was refused")
		return false, nil
	case err != nil:
		return true, err
	case !online:
		k.drop(inst, EventKicked, "the instance was taken offline")
		return false, nil
	}
	return true, nil
}

// TakeSuspicion reports whether a call with the instance of generation gen
// was refused as offline since the last call, and forgets the report.
func (k *Keeper) TakeSuspicion(gen uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.suspect == gen
	k.suspect = 0
	return s
}

// drop forgets inst if it is still the current instance.
func (k *Keeper) drop(inst Instance, event, why string) {
	k.mu.Lock()
	current := k.cur != nil && k.cur.Gen == inst.Gen
	if current {
		k.cur = nil
	}
	k.mu.Unlock()
	if !current {
		return
	}
	k.log.Warn("instance went offline; logging in again", "wid", inst.WID, "why", why)
	k.setState(StateLoggedOut, why)
	k.emit(event, why, map[string]string{"wid": inst.WID})
}

// login brings the account online: the stored instance if it is still
// online, else /secondLogin, else the QR-code login.
func (k *Keeper) login(ctx context.Context) (Instance, error) {
	k.setState(StateLoggingIn, "")
	token, err := k.Token(ctx)
	if err != nil {
		return Instance{}, err
	}
	acct, err := k.store.Account(ctx, k.opts.Name)
	if err != nil {
		return Instance{}, err
	}
	if acct.WcID == "" {
		acct.WcID = k.opts.WcID
	}
	if acct.WID != "" {
		online, err := k.api.IsOnline(ctx, token, acct.WID)
		if errors.Is(err, upstream.ErrUnauthorized) {
			k.tokens.Invalidate(token)
			return Instance{}, err
		}
		if err == nil && online {
			k.setOnline(token, acct.WID, acct.WcID)
			inst, _ := k.Current()
			return inst, nil
		}
	}
	if err := k.fence(); err != nil {
		return Instance{}, err
	}
	if acct.WcID != "" {
		wID, err := k.api.SecondLogin(ctx, token, acct.WcID)
		if err == nil {
			if online, oerr := k.api.IsOnline(ctx, token, wID); oerr == nil && online {
				return k.saveOnline(ctx, token, acct, wID, "")
			}
			k.log.Info("second login did not bring the instance online; falling back to a QR login")
		} else if ctx.Err() != nil {
			return Instance{}, ctx.Err()
		} else {
			k.log.Info("second login failed; falling back to a QR login", "err", err)
		}
	}
	return k.qrLogin(ctx, token, acct)
}

func (k *Keeper) saveOnline(ctx context.Context, token string, acct store.Account, wID, nick string) (Instance, error) {
	acct.WID = wID
	if nick != "" {
		acct.Nick = nick
	}
	acct.LoggedIn = time.Now()
	if err := k.store.SaveAccount(ctx, k.opts.Name, acct); err != nil {
		return Instance{}, err
	}
	k.setOnline(token, wID, acct.WcID)
	inst, _ := k.Current()
	return inst, nil
}

// fence fails when the daemon cannot prove it holds the account.
func (k *Keeper) fence() error {
	if k.opts.Fence == nil {
		return nil
	}
	if err := k.opts.Fence(); err != nil {
		return fmt.Errorf("session: no login for %s: %w", k.opts.Name, err)
	}
	return nil
}

// Forget drops the current instance without a word to the upstream: the
// account passed to another daemon, which goes on with the same login. The
// next login reads the instance from the store again.
func (k *Keeper) Forget() {
	k.mu.Lock()
	had := k.cur != nil
	k.cur = nil
	k.mu.Unlock()
	if had {
		k.setState(StateLoggedOut, "held by another daemon")
	}
}

func (k *Keeper) qrLogin(ctx context.Context, token string, acct store.Account) (Instance, error) {
	if err := k.fence(); err != nil {
		return Instance{}, err
	}
	login, err := k.api.IPadLogin(ctx, token, upstream.IPadLoginRequest{WcID: acct.WcID, DeviceType: k.opts.DeviceType, Proxy: k.opts.Proxy})
	if err != nil {
		return Instance{}, err
	}
	expires := time.Now().Add(k.opts.QRLifetime)
	k.log.Warn("scan the QR code with WeChat to log in", "qr_code_url", login.QRCodeURL, "wid", login.WID)
	k.setStateFacts(StateNeedsScan, login.QRCodeURL, loginFacts{qr: login.QRCodeURL, qrExpires: expires})
	k.emit(EventNeedsScan, "scan the QR code to log in", map[string]string{"qr_code_url": login.QRCodeURL})
	if k.opts.QR != nil {
		k.opts.QR.Write(DrawQR(k.opts.Name, login.QRCodeURL))
	}
	// Until the first answer, the wait is for the scan; the steps after
	// it (slider, verify code) say so themselves.
	scanned := sync.OnceFunc(remindUntil(RealClock(), expires, k.log, "waiting for the QR code to be scanned", "qr_code_url", login.QRCodeURL))
	defer scanned()
	req := upstream.LoginInfoRequest{WID: login.WID}
	for {
		waitStart := time.Now()
		out, err := k.api.GetIPadLoginInfo(ctx, token, req)
		scanned()
		if err != nil {
			return Instance{}, err
		}
		switch o := out.(type) {
		case *upstream.LoggedIn:
			if o.WcID != "" {
				acct.WcID = o.WcID
			}
			wID := o.WID
			if wID == "" {
				wID = login.WID
			}
			return k.saveOnline(ctx, token, acct, wID, o.NickName)
		case *upstream.SliderRequired:
			k.log.Warn("WeChat asks for a slider check: open the URL and slide", "url", o.URL)
			k.setStateFacts(StateSlider, o.URL, loginFacts{slider: o.URL})
			k.emit(EventNeedsScan, "solve the slider check", map[string]string{"slider_url": o.URL})
			req.VerifyCode = ""
		case *upstream.VerifyCodeRequired:
			k.log.Warn("WeChat asks for the verify code shown on the phone; submit it with the admin API", "message", o.Message,
				"how", fmt.Sprintf("curl -X POST --data CODE http://ADMIN/api/accounts/%s/code", k.opts.Name))
			k.setState(StateNeedsCode, o.Message)
			k.emit(EventNeedsCode, o.Message, nil)
			select {
			case code := <-k.codes:
				req.VerifyCode = code
			case <-ctx.Done():
				return Instance{}, ctx.Err()
			}
		default:
			return Instance{}, fmt.Errorf("session: unexpected login outcome %T", out)
		}
		k.log.Debug("login still pending", "waited", time.Since(waitStart).Round(time.Second))
	}
}

// DrawQR returns the text a terminal shows for account's login QR code
// encoding url: a line saying what to do, then the code. It is written
// with one Write, so that a writer that serialises writes never lets a log
// line cut through the code.
func DrawQR(account, url string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Account %s: scan with WeChat, or open %s\n", account, url)
	qrterminal.GenerateHalfBlock(url, qrterminal.L, &b)
	return b.Bytes()
}

// backoff returns an exponential pause with full jitter for the n-th
// consecutive failure.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + rand.N(d/2+1)
}
