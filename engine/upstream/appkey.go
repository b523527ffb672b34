package upstream

import (
	"context"
	"net/http"
	"time"
)

// AppKeyTokenTTL is how long an app-key token is valid. Renew it before;
// note that every login kicks the previous holder of the key, so exactly
// one process may hold a key.
const AppKeyTokenTTL = 24 * time.Hour

// AppKeyAuth calls the app-key API: POST /api-cloud/auth/login with an app
// key and secret returns a token valid for one day. Its codes are ints, 0
// meaning success.
type AppKeyAuth struct {
	b *base
}

// NewAppKeyAuth returns a client of the app-key API at baseURL. It makes
// no request.
func NewAppKeyAuth(baseURL string, opts ...Option) (*AppKeyAuth, error) {
	b, err := newBase(baseURL, "", opts)
	if err != nil {
		return nil, err
	}
	return &AppKeyAuth{b: b}, nil
}

// AppKeyLoginRequest is the body of /api-cloud/auth/login.
type AppKeyLoginRequest struct {
	AppKey    string `json:"appKey"`
	AppSecret string `json:"appSecret"`
	// Encrypt says AppSecret is encrypted (the API's optional scheme).
	Encrypt bool `json:"encrypt"`
}

// Login logs in with an app key and returns the token, valid for
// AppKeyTokenTTL. The login kicks whoever held the key before.
func (c *AppKeyAuth) Login(ctx context.Context, req AppKeyLoginRequest) (string, error) {
	const ep = "/api-cloud/auth/login"
	env, err := c.b.callInt(ctx, request{method: http.MethodPost, endpoint: ep, body: req})
	if err != nil {
		return "", err
	}
	return decodeAppKeyLogin(env)
}

// decodeAppKeyLogin reads the token of a successful /api-cloud/auth/login.
func decodeAppKeyLogin(env *envelope) (string, error) {
	const ep = "/api-cloud/auth/login"
	var w struct {
		Token flexString `json:"token"`
	}
	if err := decodeData(ep, env, &w); err != nil {
		return "", err
	}
	if w.Token.S == "" {
		return "", &MalformedError{Endpoint: ep, Reason: "data.token is missing"}
	}
	return w.Token.S, nil
}
