package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The token API's and the app-key API's part of the state file, so that a
// daemon's sessions keep their tokens across a restart of the simulator as
// they would across one of the real services.

type snapMobileUser struct {
	ID     int64  `json:"id"`
	Mobile string `json:"mobile"`
	// Current is the refresh token of the user's current session, which
	// stays the same through refreshes; "" for none.
	Current string `json:"current,omitempty"`
}

type snapMobileSession struct {
	Mobile      string    `json:"mobile"`
	Access      string    `json:"access"`
	Refresh     string    `json:"refresh"`
	AccessExp   time.Time `json:"accessExpire"`
	RefreshExp  time.Time `json:"refreshExpire"`
	LoginAt     time.Time `json:"loginAt"`
	KickedAt    time.Time `json:"kickedAt,omitzero"`
	AccessDead  bool      `json:"accessDead,omitempty"`
	RefreshDead bool      `json:"refreshDead,omitempty"`
	LastDevice  string    `json:"lastDevice,omitempty"`
}

type snapAppKeyToken struct {
	Token   string    `json:"token"`
	Key     string    `json:"appKey"`
	Expires time.Time `json:"expires"`
	Kicked  bool      `json:"kicked,omitempty"`
	Dead    bool      `json:"dead,omitempty"`
	Current bool      `json:"current,omitempty"`
}

// snapLogins is the state of the token and app-key APIs.
type snapLogins struct {
	MobileUsers    []snapMobileUser    `json:"mobileUsers,omitempty"`
	MobileSessions []snapMobileSession `json:"mobileSessions,omitempty"`
	MobileNextID   int64               `json:"mobileNextId,omitempty"`
	AppKeyTokens   []snapAppKeyToken   `json:"appKeyTokens,omitempty"`
	AppKeyLogins   map[string]int      `json:"appKeyLogins,omitempty"`
}

// check returns what makes the logins' state inconsistent, or "".
func (s *snapLogins) check() string {
	users := map[string]bool{}
	for i, u := range s.MobileUsers {
		if u.Mobile == "" || users[u.Mobile] {
			return fmt.Sprintf("mobileUsers[%d]: mobile %q is empty or repeated", i, u.Mobile)
		}
		users[u.Mobile] = true
	}
	refresh := map[string]bool{}
	for i, ms := range s.MobileSessions {
		switch {
		case !users[ms.Mobile]:
			return fmt.Sprintf("mobileSessions[%d]: mobile %q is not among the mobileUsers", i, ms.Mobile)
		case ms.Access == "" || ms.Refresh == "" || refresh[ms.Refresh]:
			return fmt.Sprintf("mobileSessions[%d] (mobile %s): a token is empty or repeated", i, ms.Mobile)
		}
		refresh[ms.Refresh] = true
	}
	for i, u := range s.MobileUsers {
		if u.Current != "" && !refresh[u.Current] {
			return fmt.Sprintf("mobileUsers[%d] (mobile %s): the current session is not among the mobileSessions", i, u.Mobile)
		}
	}
	for i, t := range s.AppKeyTokens {
		if t.Token == "" || t.Key == "" {
			return fmt.Sprintf("appKeyTokens[%d]: the token or its appKey is empty", i)
		}
	}
	return ""
}

// snapshot returns the state of the token and app-key APIs.
func (u *Upstream) snapshotLogins() snapLogins {
	var s snapLogins
	m := u.mobile
	m.mu.Lock()
	s.MobileNextID = m.nextID
	for _, user := range m.users {
		su := snapMobileUser{ID: user.id, Mobile: user.mobile}
		if user.current != nil {
			su.Current = user.current.refresh
		}
		s.MobileUsers = append(s.MobileUsers, su)
	}
	for _, ms := range m.refresh {
		s.MobileSessions = append(s.MobileSessions, snapMobileSession{Mobile: ms.user.mobile, Access: ms.access, Refresh: ms.refresh,
			AccessExp: ms.accessExp, RefreshExp: ms.refreshExp, LoginAt: ms.loginAt, KickedAt: ms.kickedAt,
			AccessDead: ms.accessDead, RefreshDead: ms.refreshDead, LastDevice: ms.lastDevice})
	}
	m.mu.Unlock()
	a := u.appkey
	a.mu.Lock()
	for tok, t := range a.tokens {
		s.AppKeyTokens = append(s.AppKeyTokens, snapAppKeyToken{Token: tok, Key: t.key, Expires: t.expires, Kicked: t.kicked, Dead: t.dead,
			Current: a.current[t.key] == t})
	}
	s.AppKeyLogins = maps.Clone(a.logins)
	a.mu.Unlock()
	slices.SortFunc(s.MobileUsers, func(a, b snapMobileUser) int { return strings.Compare(a.Mobile, b.Mobile) })
	slices.SortFunc(s.MobileSessions, func(a, b snapMobileSession) int { return a.LoginAt.Compare(b.LoginAt) })
	slices.SortFunc(s.AppKeyTokens, func(a, b snapAppKeyToken) int { return a.Expires.Compare(b.Expires) })
	return s
}

// restoreLogins loads the state of the token and app-key APIs.
func (u *Upstream) restoreLogins(s *snapLogins) {
	m := u.mobile
	m.nextID = s.MobileNextID
	current := map[string]*mobileUser{} // by the refresh token of its current session
	for _, su := range s.MobileUsers {
		user := &mobileUser{id: su.ID, mobile: su.Mobile}
		m.users[su.Mobile] = user
		if su.Current != "" {
			current[su.Current] = user
		}
	}
	for _, ss := range s.MobileSessions {
		ms := &mobileSession{user: m.users[ss.Mobile], access: ss.Access, refresh: ss.Refresh, accessExp: ss.AccessExp, refreshExp: ss.RefreshExp,
			loginAt: ss.LoginAt, kickedAt: ss.KickedAt, accessDead: ss.AccessDead, refreshDead: ss.RefreshDead, lastDevice: ss.LastDevice}
		m.access[ms.access], m.refresh[ms.refresh] = ms, ms
		if user := current[ms.refresh]; user != nil {
			user.current = ms
		}
	}
	a := u.appkey
	for _, st := range s.AppKeyTokens {
		t := &appKeyToken{key: st.Key, expires: st.Expires, kicked: st.Kicked, dead: st.Dead}
		a.tokens[st.Token] = t
		if st.Current {
			a.current[st.Key] = t
		}
	}
	if s.AppKeyLogins != nil {
		a.logins = maps.Clone(s.AppKeyLogins)
	}
}
