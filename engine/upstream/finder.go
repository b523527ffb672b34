package upstream

import (
	"bytes"
	"context"
	"net/http"

	json "github.com/goccy/go-json"

	"github.com/finderbot/finderbot/sdk"
)

const syncFinderEndpoint = "/syncFinder"

// SyncFinder fetches the next page of Finder (视频号) private messages of
// instance wID: POST /syncFinder {wId, keyBuff}. keyBuff is "" on the first
// call and then the Page.KeyBuff of the previous page, byte-exact. A page
// may repeat messages already seen; deduplication is the caller's job.
func (c *Client) SyncFinder(ctx context.Context, token, wID, keyBuff string) (*Page, error) {
	body := struct {
		WID     string `json:"wId"`
		KeyBuff string `json:"keyBuff"`
	}{wID, keyBuff}
	data, err := c.b.do(ctx, request{method: http.MethodPost, endpoint: syncFinderEndpoint, token: token, body: body})
	if err != nil {
		return nil, err
	}
	return c.decodeSync(data)
}

// decodeSync decodes a whole /syncFinder reply: the envelope, then its data
// as a page.
func (c *Client) decodeSync(body []byte) (*Page, error) {
	// Fast path: one scan of the page. Anything unusual, including every
	// error, goes through the general path, which explains it.
	if code, _, data, ok := splitEnvelope(body); ok && code == CodeOK {
		if p, err := DecodePage(data); err == nil {
			return p, nil
		}
	}
	env, err := decodeEnvelope(syncFinderEndpoint, body)
	if err != nil {
		return nil, err
	}
	if env.Code.S != CodeOK {
		return nil, c.refusal(syncFinderEndpoint, env)
	}
	if !env.hasData() {
		return nil, &MalformedError{Endpoint: syncFinderEndpoint, Reason: "data is null"}
	}
	p, err := DecodePage(env.Data)
	if err != nil {
		return nil, &MalformedError{Endpoint: syncFinderEndpoint, Reason: "data is not a page", Err: err}
	}
	return p, nil
}

// PrivateSendRequest is the body of /privateSend: a reply to a Finder
// private message. For an incoming sdk.Message m: ToUserName = m.From,
// MyUserName = m.To, SessionID = m.Session.
type PrivateSendRequest struct {
	WID        string `json:"wId"`
	ToUserName string `json:"toUserName"`
	MyUserName string `json:"myUserName"`
	SessionID  string `json:"sessionId"`
	Content    string `json:"content"`
}

// ReplyTo returns the request that answers m with content on instance wID.
func ReplyTo(wID string, m *sdk.Message, content string) PrivateSendRequest {
	return PrivateSendRequest{WID: wID, ToUserName: m.From, MyUserName: m.To, SessionID: m.Session, Content: content}
}

// Sent is the upstream's receipt for a sent message.
type Sent struct {
	// NewMsgID is the new message's id, exact (ids exceed 2^53).
	NewMsgID uint64
	// MsgID is the short message id, when the upstream sends one.
	MsgID uint64
	// CreateTime is the send time in Unix seconds, when sent.
	CreateTime int64
}

type wireSent struct {
	NewMsgID   flexUint `json:"newMsgId"`
	MsgID      flexUint `json:"msgId"`
	CreateTime flexInt  `json:"createTime"`
}

func (c *Client) send(ctx context.Context, ep, token string, body any) (*Sent, error) {
	env, err := c.call(ctx, ep, token, body, false)
	if err != nil {
		return nil, err
	}
	var w wireSent
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	if w.NewMsgID == 0 {
		return nil, &MalformedError{Endpoint: ep, Reason: "data.newMsgId is missing"}
	}
	return &Sent{NewMsgID: uint64(w.NewMsgID), MsgID: uint64(w.MsgID), CreateTime: int64(w.CreateTime)}, nil
}

// PrivateSend sends a Finder private message: POST /privateSend.
func (c *Client) PrivateSend(ctx context.Context, token string, req PrivateSendRequest) (*Sent, error) {
	return c.send(ctx, "/privateSend", token, req)
}

// SessionIDRequest is the body of /getSessionId, which finds the session id
// of a Finder conversation when no message carried one.
type SessionIDRequest struct {
	WID        string `json:"wId"`
	ToUserName string `json:"toUserName"`
	MyUserName string `json:"myUserName"`
	// Type is the conversation type; its values are not documented.
	Type int `json:"type"`
}

// GetSessionID returns the session id of a Finder conversation: POST
// /getSessionId. The reply's shape is not documented, so data may be the id
// itself (a string) or an object holding it under one of the field names of
// WithSessionIDFields.
func (c *Client) GetSessionID(ctx context.Context, token string, req SessionIDRequest) (string, error) {
	const ep = "/getSessionId"
	env, err := c.call(ctx, ep, token, req, false)
	if err != nil {
		return "", err
	}
	if !env.hasData() {
		return "", &MalformedError{Endpoint: ep, Reason: "data is null"}
	}
	d := bytes.TrimSpace(env.Data)
	if d[0] == '"' {
		var s string
		if err := json.Unmarshal(d, &s); err != nil || s == "" {
			return "", &MalformedError{Endpoint: ep, Reason: "data is not a session id", Err: err}
		}
		return s, nil
	}
	var obj map[string]flexString
	if err := json.Unmarshal(d, &obj); err != nil {
		return "", &MalformedError{Endpoint: ep, Reason: "data is neither a string nor an object of strings", Err: err}
	}
	for _, name := range c.b.cfg.sessionFields {
		if v := obj[name]; v.S != "" {
			return v.S, nil
		}
	}
	return "", &MalformedError{Endpoint: ep, Reason: "data has none of the session id fields " + joinQuoted(c.b.cfg.sessionFields)}
}

func joinQuoted(names []string) string {
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + n + `"`)
	}
	return b.String()
}
