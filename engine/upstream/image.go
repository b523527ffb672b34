package upstream

import (
	"context"
	"fmt"
	"strings"
)

// ImageSend is the shape of the request that answers a Finder private
// message with an image. It comes from the public wkteam endpoint catalog,
// not from the API documents finderbot was built from, so every name in it
// can be replaced (WithImageSend).
type ImageSend struct {
	// Endpoint is the path of the call.
	Endpoint string
	// WID, ToUserName, MyUserName, SessionID and ImgURL are the names of
	// the body's fields; an empty name leaves the field out.
	WID, ToUserName, MyUserName, SessionID, ImgURL string
}

// DefaultImageSend is POST /privateSendImg {wId, toUserName, sessionId,
// imgUrl}, as the catalog lists it.
var DefaultImageSend = ImageSend{Endpoint: "/privateSendImg", WID: "wId", ToUserName: "toUserName", SessionID: "sessionId", ImgURL: "imgUrl"}

// Check reports what is wrong with s: a path must begin with "/", and the
// image URL, the receiver and the instance must have a field.
func (s ImageSend) Check() error {
	if !strings.HasPrefix(s.Endpoint, "/") {
		return fmt.Errorf("endpoint %q must begin with /", s.Endpoint)
	}
	for name, v := range map[string]string{"w_id": s.WID, "to_user_name": s.ToUserName, "img_url": s.ImgURL} {
		if v == "" {
			return fmt.Errorf("the field name %s must not be empty", name)
		}
	}
	return nil
}

// WithImageSend replaces the shape of the image reply (default
// DefaultImageSend).
func WithImageSend(s ImageSend) Option { return func(c *config) { c.imageSend = &s } }

// PrivateSendImgRequest is an image reply to a Finder private message. For
// an incoming sdk.Message m: ToUserName = m.From, MyUserName = m.To,
// SessionID = m.Session.
type PrivateSendImgRequest struct {
	WID, ToUserName, MyUserName, SessionID string
	// ImgURL is where the upstream fetches the image from.
	ImgURL string
}

// PrivateSendImg answers a Finder private message with an image: POST
// /privateSendImg, or the shape given with WithImageSend. The upstream
// echoes an accepted image into the account's own messages as an image
// message (MsgType 3) carrying the newMsgId it answered.
func (c *Client) PrivateSendImg(ctx context.Context, token string, req PrivateSendImgRequest) (*Sent, error) {
	s := DefaultImageSend
	if c.b.cfg.imageSend != nil {
		s = *c.b.cfg.imageSend
	}
	body := make(map[string]string, 5)
	for _, f := range [...]struct{ name, value string }{
		{s.WID, req.WID}, {s.ToUserName, req.ToUserName}, {s.MyUserName, req.MyUserName},
		{s.SessionID, req.SessionID}, {s.ImgURL, req.ImgURL},
	} {
		if f.name != "" {
			body[f.name] = f.value
		}
	}
	return c.send(ctx, s.Endpoint, token, body)
}
