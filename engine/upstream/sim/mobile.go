package sim

import (
	"net/http"
	"sync"
	"time"
)

// mobileAPI simulates the mobile-number token API (seed 000): SMS login
// returning an access and a refresh token, refresh, and the device-kick
// check. Its code is an int, 0 meaning success. One device per user: a new
// login kicks the previous session.
type mobileAPI struct {
	u       *Upstream
	mu      sync.Mutex
	users   map[string]*mobileUser
	access  map[string]*mobileSession
	refresh map[string]*mobileSession
	nextID  int64
}

type mobileUser struct {
	id      int64
	mobile  string
	current *mobileSession
}

type mobileSession struct {
	user                    *mobileUser
	access, refresh         string
	accessExp, refreshExp   time.Time
	loginAt                 time.Time
	kickedAt                time.Time // when another login took over; zero while current
	accessDead, refreshDead bool      // expired by ExpireToken
	lastDevice              string
}

// Codes of the int-code APIs' refusals.
const (
	intCodeOK         = 0
	intCodeBadRequest = 400
	intCodeAuth       = 401
)

func newMobileAPI(u *Upstream) *mobileAPI {
	return &mobileAPI{u: u, users: map[string]*mobileUser{}, access: map[string]*mobileSession{}, refresh: map[string]*mobileSession{}}
}

func intFail(w http.ResponseWriter, msg string) { intReply(w, intCodeBadRequest, msg, nil) }

type tokenJSON struct {
	Expire string `json:"expire"`
	Value  string `json:"value"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (a *mobileAPI) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CompanyType int    `json:"companyType"`
		Mobile      string `json:"mobile"`
		ProductType int    `json:"productType"`
		Source      string `json:"source"`
		ValidateNo  string `json:"validateNo"`
	}
	if !readJSON(w, r, &req, intFail) {
		return
	}
	switch {
	case req.Mobile == "":
		intFail(w, "手机号不能为空")
		return
	case req.ValidateNo != a.u.opts.SMSCode:
		intFail(w, "验证码错误")
		return
	}
	now := a.u.clock.Now()
	a.mu.Lock()
	user := a.users[req.Mobile]
	if user == nil {
		a.nextID++
		user = &mobileUser{id: a.nextID, mobile: req.Mobile}
		a.users[req.Mobile] = user
	}
	if old := user.current; old != nil {
		old.kickedAt = now
	}
	s := &mobileSession{
		user: user, access: randHex(16), refresh: randHex(16), loginAt: now,
		accessExp: now.Add(a.u.opts.AccessTokenTTL), refreshExp: now.Add(a.u.opts.RefreshTokenTTL),
	}
	user.current = s
	a.access[s.access], a.refresh[s.refresh] = s, s
	data := marshal(struct {
		AccessToken  tokenJSON `json:"accessToken"`
		RefreshToken tokenJSON `json:"refreshToken"`
		UserInfo     struct {
			AvatarURL   string `json:"avatarUrl"`
			CompanyType int    `json:"companyType"`
			ID          int64  `json:"id"`
			Mobile      string `json:"mobile"`
			NickName    string `json:"nickName"`
			RealName    string `json:"realName"`
			UserName    string `json:"userName"`
		} `json:"userInfo"`
	}{
		AccessToken:  tokenJSON{stamp(s.accessExp), s.access},
		RefreshToken: tokenJSON{stamp(s.refreshExp), s.refresh},
		UserInfo: struct {
			AvatarURL   string `json:"avatarUrl"`
			CompanyType int    `json:"companyType"`
			ID          int64  `json:"id"`
			Mobile      string `json:"mobile"`
			NickName    string `json:"nickName"`
			RealName    string `json:"realName"`
			UserName    string `json:"userName"`
		}{"", req.CompanyType, user.id, req.Mobile, "用户" + req.Mobile[max(0, len(req.Mobile)-4):], "", req.Mobile},
	})
	a.mu.Unlock()
	if !a.u.saved(w) {
		return
	}
	a.u.log.Info("mobile login", "mobile", req.Mobile)
	intReply(w, intCodeOK, "success", data)
}

func (a *mobileAPI) refreshToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}
	if !readJSON(w, r, &req, intFail) {
		return
	}
	now := a.u.clock.Now()
	a.mu.Lock()
	s := a.refresh[req.RefreshToken]
	refusal := ""
	switch {
	case s == nil:
		refusal = "refreshToken无效,请重新登录"
	case s.refreshDead || !now.Before(s.refreshExp):
		refusal = "refreshToken已过期,请重新登录"
	case !s.kickedAt.IsZero():
		refusal = "账号已在其他设备登录,请重新登录"
	case req.AccessToken != s.access:
		refusal = "accessToken与refreshToken不匹配"
	}
	if refusal != "" {
		a.mu.Unlock()
		intReply(w, intCodeAuth, refusal, nil)
		return
	}
	delete(a.access, s.access)
	s.access, s.accessExp, s.accessDead = randHex(16), now.Add(a.u.opts.AccessTokenTTL), false
	a.access[s.access] = s
	data := marshal(tokenJSON{stamp(s.accessExp), s.access})
	a.mu.Unlock()
	if !a.u.saved(w) {
		return
	}
	intReply(w, intCodeOK, "success", data)
}

func (a *mobileAPI) checkLoginStatus(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("deviceNumber")
	now := a.u.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.access[bearer(r)]
	switch {
	case s == nil:
		intReply(w, intCodeAuth, "token无效", nil)
		return
	case s.accessDead || !now.Before(s.accessExp):
		intReply(w, intCodeAuth, "token已过期", nil)
		return
	}
	s.lastDevice = device
	var last *string
	if !s.kickedAt.IsZero() {
		t := stamp(s.kickedAt)
		last = &t
	}
	intReply(w, intCodeOK, "success", marshal(struct {
		IsLogin       bool    `json:"isLogin"`
		LastLoginTime *string `json:"lastLoginTime"`
	}{s.kickedAt.IsZero(), last}))
}

// KickDevice logs the mobile user's current session out as if another
// device had logged in; /wx/pc/check-login-status then answers isLogin
// false. It reports whether the user had a session.
func (u *Upstream) KickDevice(mobile string) bool {
	a := u.mobile
	a.mu.Lock()
	user := a.users[mobile]
	if user == nil || user.current == nil {
		a.mu.Unlock()
		return false
	}
	user.current.kickedAt = u.clock.Now()
	user.current = nil
	a.mu.Unlock()
	u.log.Info("device kicked", "mobile", mobile)
	u.saveOrLog()
	return true
}

func (a *mobileAPI) expire(token string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.access[token]; s != nil {
		s.accessDead = true
		return true
	}
	if s := a.refresh[token]; s != nil {
		s.refreshDead, s.accessDead = true, true
		return true
	}
	return false
}
