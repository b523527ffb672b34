package upstream

import "context"

// SendTextRequest is the body of /sendText: an ordinary WeChat text message.
type SendTextRequest struct {
	// WID is the sending instance.
	WID string `json:"wId"`
	// WcID is the receiver: a wxid, or a group id ending in "@chatroom".
	WcID string `json:"wcId"`
	// Content is the text.
	Content string `json:"content"`
}

// SendText sends an ordinary WeChat text message: POST /sendText.
func (c *Client) SendText(ctx context.Context, token string, req SendTextRequest) (*Sent, error) {
	return c.send(ctx, "/sendText", token, req)
}
