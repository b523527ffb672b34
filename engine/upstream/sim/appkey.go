package sim

import (
	"net/http"
	"sync"
	"time"
)

// appKeyAPI simulates the app-key API (seed 001): one login per key, a
// token valid for a day, and a new login kicks the previous holder.
type appKeyAPI struct {
	u       *Upstream
	mu      sync.Mutex
	tokens  map[string]*appKeyToken
	current map[string]*appKeyToken // by app key
	logins  map[string]int          // by app key
}

type appKeyToken struct {
	key     string
	expires time.Time
	kicked  bool
	dead    bool // expired by ExpireToken
}

// Token states reported by AppKeyTokenState.
const (
	TokenValid   = "valid"
	TokenExpired = "expired"
	TokenKicked  = "kicked"
	TokenUnknown = "unknown"
)

const appKeyFailCode = 1001

func newAppKeyAPI(u *Upstream) *appKeyAPI {
	return &appKeyAPI{u: u, tokens: map[string]*appKeyToken{}, current: map[string]*appKeyToken{}, logins: map[string]int{}}
}

func appKeyFail(w http.ResponseWriter, msg string) { intReply(w, appKeyFailCode, msg, nil) }

func (a *appKeyAPI) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppKey    string `json:"appKey"`
		AppSecret string `json:"appSecret"`
		Encrypt   bool   `json:"encrypt"`
	}
	if !readJSON(w, r, &req, appKeyFail) {
		return
	}
	secret, ok := a.u.opts.AppKeys[req.AppKey]
	switch {
	case !ok:
		appKeyFail(w, "apiKey does not exist")
		return
	case req.Encrypt:
		appKeyFail(w, "encrypt is not supported by the simulator; send encrypt false")
		return
	case req.AppSecret != secret:
		appKeyFail(w, "appSecret error")
		return
	}
	token := randHex(16)
	a.mu.Lock()
	if old := a.current[req.AppKey]; old != nil {
		old.kicked = true
	}
	t := &appKeyToken{key: req.AppKey, expires: a.u.clock.Now().Add(a.u.opts.AppKeyTokenTTL)}
	a.tokens[token], a.current[req.AppKey] = t, t
	a.logins[req.AppKey]++
	a.mu.Unlock()
	if !a.u.saved(w) {
		return
	}
	a.u.log.Info("app-key login", "appKey", req.AppKey)
	intReply(w, intCodeOK, "ok", marshal(struct {
		Token string `json:"token"`
	}{token}))
}

// AppKeyTokenState reports whether an app-key token is TokenValid,
// TokenExpired (its day is over), TokenKicked (a newer login of its key
// took over) or TokenUnknown.
func (u *Upstream) AppKeyTokenState(token string) string {
	a := u.appkey
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tokens[token]
	switch {
	case t == nil:
		return TokenUnknown
	case t.kicked:
		return TokenKicked
	case t.dead || !u.clock.Now().Before(t.expires):
		return TokenExpired
	}
	return TokenValid
}

// AppKeyLogins returns how many successful logins appKey has had.
func (u *Upstream) AppKeyLogins(appKey string) int {
	u.appkey.mu.Lock()
	defer u.appkey.mu.Unlock()
	return u.appkey.logins[appKey]
}

func (a *appKeyAPI) expire(token string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.tokens[token]; t != nil {
		t.dead = true
		return true
	}
	return false
}
