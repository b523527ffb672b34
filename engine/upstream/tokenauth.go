package upstream

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// TokenAuth calls the mobile-number token API: an SMS-code login returning
// an access token and a refresh token, each with its expiry; refresh; and
// the device-kick check. Its codes are ints, 0 meaning success. Calls that
// need a token send "Authorization: Bearer <token>" (see WithAuthPrefix).
type TokenAuth struct {
	b *base
}

// NewTokenAuth returns a client of the token API at baseURL. It makes no
// request.
func NewTokenAuth(baseURL string, opts ...Option) (*TokenAuth, error) {
	b, err := newBase(baseURL, "Bearer ", opts)
	if err != nil {
		return nil, err
	}
	return &TokenAuth{b: b}, nil
}

// MobileLoginRequest is the body of /auth/mobile/login.
type MobileLoginRequest struct {
	CompanyType int    `json:"companyType"`
	Mobile      string `json:"mobile"`
	ProductType int    `json:"productType"`
	Source      string `json:"source"`
	// ValidateNo is the SMS verification code.
	ValidateNo string `json:"validateNo"`
}

// Token is a token and the time it expires.
type Token struct {
	Value string
	// Expire is the zero time when the upstream sent no expiry.
	Expire time.Time
}

// UserInfo is the user a mobile login belongs to.
type UserInfo struct {
	AvatarURL   string
	CompanyType int
	ID          int64
	Mobile      string
	NickName    string
	RealName    string
	UserName    string
}

// MobileLogin is the result of /auth/mobile/login.
type MobileLogin struct {
	AccessToken  Token
	RefreshToken Token
	User         UserInfo
}

type wireToken struct {
	Expire flexString `json:"expire"`
	Value  flexString `json:"value"`
}

func (w *wireToken) token(ep, field string) (Token, error) {
	if w.Value.S == "" {
		return Token{}, &MalformedError{Endpoint: ep, Reason: field + ".value is missing"}
	}
	t, err := parseTime(w.Expire.S)
	if err != nil {
		return Token{}, &MalformedError{Endpoint: ep, Reason: field + ".expire", Err: err}
	}
	return Token{Value: w.Value.S, Expire: t}, nil
}

// MobileLogin logs in with a mobile number and SMS code: POST
// /auth/mobile/login. Logging in kicks the user's previous session.
func (c *TokenAuth) MobileLogin(ctx context.Context, req MobileLoginRequest) (*MobileLogin, error) {
	const ep = "/auth/mobile/login"
	env, err := c.b.callInt(ctx, request{method: http.MethodPost, endpoint: ep, body: req})
	if err != nil {
		return nil, err
	}
	return decodeMobileLogin(env)
}

// decodeMobileLogin reads the data of a successful /auth/mobile/login.
func decodeMobileLogin(env *envelope) (*MobileLogin, error) {
	const ep = "/auth/mobile/login"
	var w struct {
		AccessToken  wireToken `json:"accessToken"`
		RefreshToken wireToken `json:"refreshToken"`
		UserInfo     struct {
			AvatarURL   flexString `json:"avatarUrl"`
			CompanyType flexInt    `json:"companyType"`
			ID          flexInt    `json:"id"`
			Mobile      flexString `json:"mobile"`
			NickName    flexString `json:"nickName"`
			RealName    flexString `json:"realName"`
			UserName    flexString `json:"userName"`
		} `json:"userInfo"`
	}
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	out := &MobileLogin{}
	var err error
	if out.AccessToken, err = w.AccessToken.token(ep, "data.accessToken"); err != nil {
		return nil, err
	}
	if out.RefreshToken, err = w.RefreshToken.token(ep, "data.refreshToken"); err != nil {
		return nil, err
	}
	ui := &w.UserInfo
	out.User = UserInfo{AvatarURL: ui.AvatarURL.S, CompanyType: int(ui.CompanyType), ID: int64(ui.ID),
		Mobile: ui.Mobile.S, NickName: ui.NickName.S, RealName: ui.RealName.S, UserName: ui.UserName.S}
	return out, nil
}

// Refresh exchanges a refresh token for a new access token: POST
// /app/auth/token/refresh {accessToken, refreshToken}. The refresh token
// stays the same.
func (c *TokenAuth) Refresh(ctx context.Context, accessToken, refreshToken string) (*Token, error) {
	const ep = "/app/auth/token/refresh"
	body := struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}{accessToken, refreshToken}
	env, err := c.b.callInt(ctx, request{method: http.MethodPost, endpoint: ep, body: body})
	if err != nil {
		return nil, err
	}
	return decodeRefresh(env)
}

// decodeRefresh reads the data of a successful /app/auth/token/refresh.
func decodeRefresh(env *envelope) (*Token, error) {
	const ep = "/app/auth/token/refresh"
	var w wireToken
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	t, err := w.token(ep, "data")
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// LoginStatus is the result of the device-kick check.
type LoginStatus struct {
	// IsLogin is false when another device has logged in since.
	IsLogin bool
	// LastLoginTime is, when IsLogin is false, the time of the last login
	// (the one that kicked this session); zero when not sent.
	LastLoginTime time.Time
}

// CheckLoginStatus asks whether the session of accessToken is still the
// logged-in one on device deviceNumber: GET
// /wx/pc/check-login-status/{deviceNumber}.
func (c *TokenAuth) CheckLoginStatus(ctx context.Context, accessToken, deviceNumber string) (*LoginStatus, error) {
	const ep = "/wx/pc/check-login-status"
	env, err := c.b.callInt(ctx, request{method: http.MethodGet, endpoint: ep, path: ep + "/" + url.PathEscape(deviceNumber), token: accessToken})
	if err != nil {
		return nil, err
	}
	return decodeLoginStatus(env)
}

// decodeLoginStatus reads the data of a successful check-login-status.
func decodeLoginStatus(env *envelope) (*LoginStatus, error) {
	const ep = "/wx/pc/check-login-status"
	var w struct {
		IsLogin       *bool      `json:"isLogin"`
		LastLoginTime flexString `json:"lastLoginTime"`
	}
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	if w.IsLogin == nil {
		return nil, &MalformedError{Endpoint: ep, Reason: "data.isLogin is missing"}
	}
	t, err := parseTime(w.LastLoginTime.S)
	if err != nil {
		return nil, &MalformedError{Endpoint: ep, Reason: "data.lastLoginTime", Err: err}
	}
	return &LoginStatus{IsLogin: *w.IsLogin, LastLoginTime: t}, nil
}
