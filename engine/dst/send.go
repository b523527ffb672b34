package dst

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

const (
	endpointPrivateSend = "/privateSend"
	endpointPrivateImg  = "/privateSendImg"
	endpointSendText    = "/sendText"
	endpointSessionID   = "/getSessionId"
)

// PrivateSend answers a Finder private message. When the upstream accepts
// it, it appends the echo to the account's log at once (isSender 1, From
// myUserName, To toUserName, msgSessionId sessionId, the content, a new
// NewMsgId, CreateTime the clock) and records a Delivery; the answer's
// NewMsgID is the echo's. Faults decide whether it is accepted and what
// the caller sees. Empty fields are refused (code "1001"), an unknown wId
// is refused as offline, token is not checked.
func (u *Upstream) PrivateSend(ctx context.Context, token string, req upstream.PrivateSendRequest) (*upstream.Sent, error) {
	var sent *upstream.Sent
	err := u.exchange(ctx, endpointPrivateSend, req.WID, func(a *account, shape Shape) error {
		if missing := missingFields("toUserName", req.ToUserName, "myUserName", req.MyUserName,
			"sessionId", req.SessionID, "content", req.Content); missing != "" {
			return refusal(endpointPrivateSend, msgMissingArgs+missing+"不能为空")
		}
		now := u.clock.Now()
		echo := Incoming{ID: u.newID(), Type: sdk.RawText, From: req.MyUserName, To: req.ToUserName,
			Session: req.SessionID, Text: req.Content, FromSelf: true}
		seq := a.append(&echo, now)
		u.accepted = append(u.accepted, Delivery{Endpoint: endpointPrivateSend, WID: req.WID,
			To: req.ToUserName, My: req.MyUserName, Session: req.SessionID, Content: req.Content,
			NewMsgID: echo.ID, Time: now, Shape: shape})
		sent = &upstream.Sent{NewMsgID: echo.ID, MsgID: uint64(seq), CreateTime: now.Unix()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sent, nil
}

// PrivateSendImg answers a Finder private message with an image, as
// PrivateSend does with a text: when the upstream accepts it, the echo is
// the account's own image message, whose content is the stored image's
// <img> XML — not the URL, as on the real upstream — and the Delivery's
// Content is the URL.
func (u *Upstream) PrivateSendImg(ctx context.Context, token string, req upstream.PrivateSendImgRequest) (*upstream.Sent, error) {
	var sent *upstream.Sent
	err := u.exchange(ctx, endpointPrivateImg, req.WID, func(a *account, shape Shape) error {
		if missing := missingFields("toUserName", req.ToUserName, "sessionId", req.SessionID, "imgUrl", req.ImgURL); missing != "" {
			return refusal(endpointPrivateImg, msgMissingArgs+missing+"不能为空")
		}
		now := u.clock.Now()
		id := u.newID()
		echo := Incoming{ID: id, Type: sdk.RawImage, From: req.MyUserName, To: req.ToUserName, Session: req.SessionID,
			Text: fmt.Sprintf(`<msg><img md5="%032x" length="4096" /></msg>`, id), FromSelf: true}
		seq := a.append(&echo, now)
		u.accepted = append(u.accepted, Delivery{Endpoint: endpointPrivateImg, WID: req.WID,
			To: req.ToUserName, My: req.MyUserName, Session: req.SessionID, Content: req.ImgURL,
			NewMsgID: id, Time: now, Shape: shape})
		sent = &upstream.Sent{NewMsgID: id, MsgID: uint64(seq), CreateTime: now.Unix()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sent, nil
}

// SendText sends an ordinary WeChat text. When the upstream accepts it, it
// records a Delivery; there is no echo in the Finder log. Faults, refusals
// and token are as for PrivateSend.
func (u *Upstream) SendText(ctx context.Context, token string, req upstream.SendTextRequest) (*upstream.Sent, error) {
	var sent *upstream.Sent
	err := u.exchange(ctx, endpointSendText, req.WID, func(_ *account, shape Shape) error {
		if missing := missingFields("wcId", req.WcID, "content", req.Content); missing != "" {
			return refusal(endpointSendText, msgMissingArgs+missing+"不能为空")
		}
		now := u.clock.Now()
		id := u.newID()
		u.accepted = append(u.accepted, Delivery{Endpoint: endpointSendText, WID: req.WID,
			To: req.WcID, Content: req.Content, NewMsgID: id, Time: now, Shape: shape})
		sent = &upstream.Sent{NewMsgID: id, MsgID: id % 1e9, CreateTime: now.Unix()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sent, nil
}

// GetSessionID returns the session id of the conversation between
// toUserName and myUserName: the same for the same pair every time, and
// the one Inject gives a stranger's messages by default. It goes through
// the send faults; it accepts nothing, so only their errors show.
func (u *Upstream) GetSessionID(ctx context.Context, token string, req upstream.SessionIDRequest) (string, error) {
	var id string
	err := u.exchange(ctx, endpointSessionID, req.WID, func(_ *account, _ Shape) error {
		if missing := missingFields("toUserName", req.ToUserName, "myUserName", req.MyUserName); missing != "" {
			return refusal(endpointSessionID, msgMissingArgs+missing+"不能为空")
		}
		id = sessionFor(req.ToUserName, req.MyUserName)
		return nil
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// exchange carries one request through the send faults. serve is the
// upstream's own work (check, accept, record); it runs only when the
// request reaches the upstream, and what it returns is the answer unless a
// fault then loses the answer.
func (u *Upstream) exchange(ctx context.Context, ep, wID string, serve func(a *account, shape Shape) error) error {
	c := Call{Endpoint: ep, WID: wID, Time: u.clock.Now()}
	before := len(u.accepted)
	err := u.exchangeInner(ctx, ep, wID, serve, &c)
	c.Accepted = len(u.accepted) > before
	u.record(c, err)
	return err
}

func (u *Upstream) exchangeInner(ctx context.Context, ep, wID string, serve func(*account, Shape) error, c *Call) error {
	if err := ctx.Err(); err != nil {
		// The client does not dial with a done context.
		return transportError(ep, false, err)
	}
	shape := u.drawSend()
	if shape != "" {
		c.Shapes = append(c.Shapes, shape)
	}
	// Faults that end the call before the upstream accepts anything.
	switch shape {
	case ShapeUnwritten:
		return transportError(ep, false, errDialRefused)
	case ShapeDropped:
		u.outlast()
		return deadline(ep)
	case ShapeStatus502Lost:
		return badGateway(ep)
	case ShapeRefuse:
		return refusal(ep, msgFail)
	case ShapeOffline:
		return offline(ep)
	}
	a := u.accounts[wID]
	var err error
	if a == nil {
		err = offline(ep)
	} else {
		err = serve(a, shape)
	}
	// Faults that lose the upstream's answer, whatever it was.
	switch shape {
	case ShapeCut:
		return cutBody(ep)
	case ShapeMalformed:
		return u.malformed(ep)
	case ShapeLate:
		u.outlast()
		return deadline(ep)
	case ShapeStatus502Accepted:
		return badGateway(ep)
	}
	return err
}

// outlast advances the clock past the call timeout, by up to a second
// more, as a caller waiting for an answer that never comes in time sees it.
func (u *Upstream) outlast() {
	u.clock.Advance(u.faults.callTimeout() + time.Duration(1+u.rng.IntN(1000))*time.Millisecond)
}

// missingFields returns the names, comma separated, of the name, value
// pairs whose value is empty.
func missingFields(pairs ...string) string {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	return strings.Join(missing, ", ")
}
