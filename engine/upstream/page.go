package upstream

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/finderbot/finderbot/sdk"
)

// Page is one /syncFinder reply: the messages it carried, in order, the
// items that could not be read as messages, and the cursor to pass on the
// next call.
type Page struct {
	// Messages are the page's items in the order received, less the
	// skipped ones. A page may repeat messages seen on an earlier page, or
	// earlier on the same page; deduplication is the caller's job.
	Messages []sdk.Message `json:"messages"`
	// Skipped are the items that could not be turned into a Message, in
	// the order received. They do not stop the sync: the caller reports
	// them and moves on to KeyBuff like for any other page.
	Skipped []SkippedItem `json:"skipped,omitempty"`
	// KeyBuff is the opaque cursor, byte-exact as received. Store it as is
	// and send it back on the next call.
	KeyBuff string `json:"keyBuff"`
}

// SkippedItem is a page item that could not be turned into a Message: its
// NewMsgId is missing, 0 or not an unsigned 64-bit integer, or the item does
// not decode at all. Without a usable id the daemon could neither deduplicate
// the message nor settle the replies it causes, so it is reported instead of
// delivered.
type SkippedItem struct {
	// Index is the item's position in the page's list, counting from 0 and
	// counting every item, skipped or not.
	Index int `json:"index"`
	// Reason says what is wrong with the item, for example "NewMsgId is
	// missing" or "NewMsgId does not decode: 1.5 is not an unsigned 64-bit
	// integer".
	Reason string `json:"reason"`
	// Raw is the item's JSON as received, cut to at most 1 KiB on a UTF-8
	// boundary.
	Raw string `json:"raw"`
}

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
// Every item with a usable NewMsgId becomes a Message, including types
// finderbot does not know. System notices and images get their XML parsed
// into Sys and Image; XML that does not parse leaves the message intact with
// ParseError set.
//
// One bad item never fails the page: an item whose NewMsgId is missing, 0 or
// not an unsigned 64-bit integer, or which does not decode at all, goes to
// Page.Skipped instead of Messages. Failing the page would make the daemon
// sync the same page forever, and a message with ID 0 would make every later
// one a duplicate. Only a problem with the page itself is an error: JSON that
// is malformed, a missing keyBuff, a list that is not an array or has more
// than MaxPageItems items.
//
// DecodePage does not deduplicate: a NewMsgId repeated within the page, or
// seen on an earlier page, is in Messages each time. Deduplication is the
// daemon's job, which remembers the ids it has committed.
func DecodePage(data []byte) (*Page, error) {
	// Fast path: one pass over the whole page. A page the upstream sent as
	// documented has no bad item, so the per-item decode below runs only
	// for the rare page that needs it.
	var w wirePage
	if err := json.Unmarshal(data, &w); err != nil {
		return decodePageByItem(data)
	}
	if w.KeyBuff == nil {
		return nil, errNoKeyBuff
	}
	if len(w.List) > MaxPageItems {
		return nil, tooManyItems(len(w.List))
	}
	for i := range w.List {
		if w.List[i].Content.Msg.NewMsgID == 0 {
			return decodePageByItem(data)
		}
	}
	p := &Page{KeyBuff: *w.KeyBuff, Messages: make([]sdk.Message, len(w.List))}
	for i := range w.List {
		fromWire(&p.Messages[i], &w.List[i].Content)
	}
	return p, nil
}

var errNoKeyBuff = errors.New("upstream: decode sync page: keyBuff is missing")

func tooManyItems(n int) error {
	return fmt.Errorf("upstream: decode sync page: %d items, more than the limit of %d", n, MaxPageItems)
}

// rawPage is a page whose items are left undecoded, so that each can fail on
// its own.
type rawPage struct {
	List    []json.RawMessage `json:"list"`
	KeyBuff *string           `json:"keyBuff"`
}

// decodePageByItem is DecodePage's slow path: the page first, then each item
// on its own, so that a bad item is skipped rather than failing the page.
func decodePageByItem(data []byte) (*Page, error) {
	var w rawPage
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("upstream: decode sync page: %w", err)
	}
	if w.KeyBuff == nil {
		return nil, errNoKeyBuff
	}
	if len(w.List) > MaxPageItems {
		return nil, tooManyItems(len(w.List))
	}
	p := &Page{KeyBuff: *w.KeyBuff, Messages: make([]sdk.Message, 0, len(w.List))}
	for i, raw := range w.List {
		var item wireItem
		err := json.Unmarshal(raw, &item)
		if err == nil && item.Content.Msg.NewMsgID != 0 {
			p.Messages = append(p.Messages, sdk.Message{})
			fromWire(&p.Messages[len(p.Messages)-1], &item.Content)
			continue
		}
		p.Skipped = append(p.Skipped, SkippedItem{Index: i, Reason: skipReason(raw, err), Raw: cutRaw(raw)})
	}
	return p, nil
}

// idProbe reads nothing of an item but its NewMsgId, as written, to say what
// is wrong with it.
type idProbe struct {
	Content struct {
		Msg struct {
			NewMsgID json.RawMessage `json:"NewMsgId"`
		} `json:"msg"`
	} `json:"content"`
}

// skipReason explains why the item raw, which decoded with err (nil when it
// decoded with a zero NewMsgId), is skipped. The id is looked at first: it
// is what the daemon needs, and a bad id also fails the decode.
func skipReason(raw json.RawMessage, err error) string {
	if len(raw) == 0 {
		return "item is empty"
	}
	switch raw[0] {
	case '{':
	case '"':
		return "item is a string, not an object"
	case '[':
		return "item is an array, not an object"
	case 'n':
		return "item is null, not an object"
	case 't', 'f':
		return "item is a boolean, not an object"
	default:
		return "item is a number, not an object"
	}
	var probe idProbe
	if perr := json.Unmarshal(raw, &probe); perr == nil {
		switch id := string(probe.Content.Msg.NewMsgID); id {
		case "":
			return "NewMsgId is missing"
		case "null":
			return "NewMsgId is null"
		case "0":
			return "NewMsgId is 0"
		default:
			if _, perr := strconv.ParseUint(id, 10, 64); perr != nil {
				shown := sdk.CutText(id, 64)
				if len(shown) < len(id) {
					shown += "..."
				}
				return "NewMsgId does not decode: " + shown + " is not an unsigned 64-bit integer"
			}
		}
	}
	if err == nil {
		// Not expected: an item that decodes with NewMsgId 0 has one of
		// the ids above. Kept so that no item is skipped without a reason.
		return "NewMsgId is 0"
	}
	return "item does not decode: " + describeDecodeErr(err)
}

// describeDecodeErr says where in the item a decode error is and what was
// there, in the item's own terms rather than the decoder's Go types.
func describeDecodeErr(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" || te.Type == nil {
		return err.Error()
	}
	want := "an object"
	switch te.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "an integer"
	case reflect.String:
		want = "a string"
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Bool:
		want = "a boolean"
	}
	return fmt.Sprintf("%s: got JSON %s, want %s", te.Field, te.Value, want)
}

// maxSkippedRaw bounds SkippedItem.Raw: enough to recognise an item in a
// log, and a page of huge bad items cannot make the daemon log megabytes.
const maxSkippedRaw = 1 << 10

func cutRaw(raw json.RawMessage) string {
	return sdk.CutText(string(raw), maxSkippedRaw)
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

func fromWire(m *sdk.Message, c *wireContent) {
	w := &c.Msg
	seq := c.Seq
	if seq == 0 {
		seq = w.MsgSeq
	}
	*m = sdk.Message{
		ID:       w.NewMsgID,
		Seq:      seq,
		Type:     sdk.TypeOf(w.MsgType),
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
	case sdk.TypeText:
		m.Text = m.Content
	case sdk.TypeSystem:
		if w.MsgType == sdk.RawSysMsg {
			m.Sys, err = sdk.ParseSysMsg(m.Content)
		}
	case sdk.TypeImage:
		m.Image, err = sdk.ParseImage(m.Content)
	}
	if err != nil {
		m.ParseError = err.Error()
	}
}
