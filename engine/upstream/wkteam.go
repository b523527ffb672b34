package upstream

import (
	"context"
	"fmt"
	"net/http"
)

// Wkteam reply codes. The API sends them as JSON strings.
const (
	CodeOK   = "1000"
	CodeFail = "1001"
)

// Client calls the E云管家 (wkteam) style iPad-protocol API. Every call is a
// POST with a JSON body and the member token in the Authorization header;
// replies are {"code":"1000","message":"处理成功","data":...}. A Client is
// safe for concurrent use by any number of accounts.
type Client struct {
	b *base
}

// New returns a client of the wkteam API at baseURL, for example
// "http://127.0.0.1:9100". It makes no request.
func New(baseURL string, opts ...Option) (*Client, error) {
	b, err := newBase(baseURL, "", opts)
	if err != nil {
		return nil, err
	}
	if s := b.cfg.imageSend; s != nil {
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("upstream: WithImageSend: %w", err)
		}
	}
	return &Client{b: b}, nil
}

// BaseURL returns the API's base URL without a trailing slash.
func (c *Client) BaseURL() string { return c.b.url }

// call posts body to endpoint and returns the envelope of a "1000" reply;
// any other code is returned as an *Error.
func (c *Client) call(ctx context.Context, endpoint, token string, body any, longPoll bool) (*envelope, error) {
	data, err := c.b.do(ctx, request{method: http.MethodPost, endpoint: endpoint, token: token, body: body, longPoll: longPoll})
	if err != nil {
		return nil, err
	}
	env, err := decodeEnvelope(endpoint, data)
	if err != nil {
		return nil, err
	}
	if env.Code.S != CodeOK {
		return env, c.refusal(endpoint, env)
	}
	return env, nil
}

// refusal turns a failure envelope into an *Error, classified by its
// message.
func (c *Client) refusal(endpoint string, env *envelope) *Error {
	msg := env.text()
	e := &Error{Endpoint: endpoint, Code: env.Code.S, Message: msg}
	e.Unauthorized = matchAny(msg, c.b.cfg.auth)
	e.Offline = !e.Unauthorized && matchAny(msg, c.b.cfg.offline)
	return e
}
