package sdk

import (
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
)

// MaxPageItems bounds the number of items DecodePage accepts in one page. The
// upstream sends a few dozen at most; a page past this is refused rather than
// allocated.
const MaxPageItems = 10_000

// wireString is the {"string": "..."} wrapper the upstream puts around
// Content, FromUserName and ToUserName.
type wireString struct {
	String string `json:"string"`
}

// wireMsg is content.msg of a /syncFinder item. Fields finderbot does not use
// (ImgBuf, Status, ImgStatus, MsgId) are left out so the decoder skips them.
type wireMsg struct {
	Content      wireString `json:"Content"`
	CreateTime   int64      `json:"CreateTime"`
	MsgSeq       int64      `json:"MsgSeq"`
	NewMsgID     uint64     `json:"NewMsgId"`
	FromUserName wireString `json:"FromUserName"`
	ToUserName   wireString `json:"ToUserName"`
	MsgType      int        `json:"MsgType"`
	MsgSource    string     `json:"MsgSource"`
}

type wireContent struct {
	Msg          wireMsg `json:"msg"`
	IsSender     int     `json:"isSender"`
	MsgSessionID string  `json:"msgSessionId"`
	Seq          int64   `json:"seq"`
}

type wireItem struct {
	Content wireContent `json:"content"`
}

type wirePage struct {
	List    []wireItem `json:"list"`
	KeyBuff *string    `json:"keyBuff"`
}

// DecodePage decodes the "data" object of a /syncFinder reply:
//
//	{"list": [{"content": {"msg": {...}, "isSender": 0, ...}}, ...], "keyBuff": "..."}
//
// Every item becomes a Message, including types finderbot does not know.
// System notices and images get their XML parsed into Sys and Image; XML that
// does not parse leaves the message intact with ParseError set. A page without
// a keyBuff, or whose JSON is malformed, is an error.
func DecodePage(data []byte) (*Page, error) {
	var w wirePage
	if err := json.UnmarshalNoEscape(data, &w); err != nil {
		return nil, fmt.Errorf("sdk: decode sync page: %w", err)
	}
	if w.KeyBuff == nil {
		return nil, errors.New("sdk: decode sync page: keyBuff is missing")
	}
	if len(w.List) > MaxPageItems {
		return nil, fmt.Errorf("sdk: decode sync page: %d items, more than the limit of %d", len(w.List), MaxPageItems)
	}
	p := &Page{KeyBuff: *w.KeyBuff, Messages: make([]Message, len(w.List))}
	for i := range w.List {
		fromWire(&p.Messages[i], &w.List[i].Content)
	}
	return p, nil
}

// UnmarshalJSON decodes a /syncFinder "data" object; see DecodePage.
func (p *Page) UnmarshalJSON(data []byte) error {
	d, err := DecodePage(data)
	if err != nil {
		return err
	}
	*p = *d
	return nil
}

func fromWire(m *Message, c *wireContent) {
	w := &c.Msg
	seq := c.Seq
	if seq == 0 {
		seq = w.MsgSeq
	}
	*m = Message{
		ID:       w.NewMsgID,
		Seq:      seq,
		Type:     TypeOf(w.MsgType),
		RawType:  w.MsgType,
		Content:  w.Content.String,
		From:     w.FromUserName.String,
		To:       w.ToUserName.String,
		Session:  c.MsgSessionID,
		FromSelf: c.IsSender == 1,
		Time:     time.Unix(w.CreateTime, 0).UTC(),
		Source:   w.MsgSource,
	}
	var err error
	switch m.Type {
	case TypeText:
		m.Text = m.Content
	case TypeSystem:
		if w.MsgType == RawSysMsg {
			m.Sys, err = ParseSysMsg(m.Content)
		}
	case TypeImage:
		m.Image, err = ParseImage(m.Content)
	}
	if err != nil {
		m.ParseError = err.Error()
	}
}
