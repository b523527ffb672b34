package dst

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/finderbot/finderbot/sdk"
)

// JunkFrom is the sender of the junk items the JunkNoID and JunkBadID
// faults put into pages. No account's log holds a message from it, so a
// Delivery addressed to it answers junk.
const JunkFrom = "fv1_6a756e6b6a756e6b6a756e6b6a756e6b@findermsgstranger"

type wireString struct {
	String string `json:"string"`
}

// wireItem is one /syncFinder list item, with the fields and field order
// of the documented page (seeds/003) and of the simulator's render.
type wireItem struct {
	SyncKeyType int         `json:"syncKeyType"`
	ItemType    int         `json:"itemType"`
	SubType     int         `json:"subType"`
	Content     wireContent `json:"content"`
}

type wireContent struct {
	Msg          wireMsg `json:"msg"`
	ExtInfo      string  `json:"extinfo,omitempty"`
	IsSender     int     `json:"isSender"`
	MsgSessionID string  `json:"msgSessionId"`
	Seq          int64   `json:"seq"`
}

type wireImgBuf struct {
	ILen int `json:"iLen"`
}

type wireMsg struct {
	Status     int        `json:"Status"`
	ImgBuf     wireImgBuf `json:"ImgBuf"`
	Content    wireString `json:"Content"`
	CreateTime int64      `json:"CreateTime"`
	MsgSeq     int64      `json:"MsgSeq"`
	// NewMsgID is raw so that junk items can leave it out or make it a
	// string; real items carry the number.
	NewMsgID     json.RawMessage `json:"NewMsgId,omitempty"`
	FromUserName wireString      `json:"FromUserName"`
	ToUserName   wireString      `json:"ToUserName"`
	MsgType      int             `json:"MsgType"`
	ImgStatus    int             `json:"ImgStatus"`
	MsgID        int64           `json:"MsgId"`
	MsgSource    string          `json:"MsgSource"`
}

// entry is one message of an account's log, rendered once as its page item.
type entry struct {
	id   uint64
	item []byte
}

// render returns the page item of m, whose defaults are filled in, at seq.
func render(m *Incoming, seq int64, createTime int64) []byte {
	return renderItem(m, seq, createTime, json.RawMessage(strconv.FormatUint(m.ID, 10)))
}

func renderItem(m *Incoming, seq, createTime int64, id json.RawMessage) []byte {
	c := wireContent{
		Msg: wireMsg{
			Status: 3, Content: wireString{m.Text}, CreateTime: createTime, MsgSeq: seq,
			NewMsgID: id, FromUserName: wireString{m.From}, ToUserName: wireString{m.To},
			MsgType: m.Type, ImgStatus: 1, MsgID: seq,
		},
		MsgSessionID: m.Session,
		Seq:          seq,
	}
	if !isSystem(m.Type) {
		c.ExtInfo = "CAIQAw=="
	}
	if m.FromSelf {
		c.IsSender = 1
	}
	return marshal(wireItem{SyncKeyType: 1, ItemType: 1, Content: c})
}

// junkItem returns a text item from JunkFrom to finder whose NewMsgId is id
// as raw JSON, or absent when id is nil.
func junkItem(finder string, createTime int64, id json.RawMessage) []byte {
	m := Incoming{Type: sdk.RawText, From: JunkFrom, To: finder, Session: sessionFor(JunkFrom, finder), Text: "junk"}
	return renderItem(&m, 0, createTime, id)
}

// renderPage returns the "data" object of a /syncFinder reply.
func renderPage(items [][]byte, keyBuff string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"list":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteString(`],"keyBuff":`)
	b.Write(marshal(keyBuff))
	b.WriteByte('}')
	return b.Bytes()
}

// marshal encodes v as JSON without HTML escaping, as the upstream writes
// XML content.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("dst: marshal %T: %v", v, err))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

func isSystem(msgType int) bool { return msgType == sdk.RawNotice || msgType == sdk.RawSysMsg }

// sessionFor returns the Finder session id of the conversation between
// userName and myUserName, shaped like the real ones and stable: a
// stranger "fv1_<hex>@findermsgstranger" has session "<hex>@findermsg", as
// in the documented page; anyone else a hash of the pair.
func sessionFor(userName, myUserName string) string {
	const stranger = "@findermsgstranger"
	if hx, ok := strings.CutPrefix(userName, "fv1_"); ok {
		if hx, ok := strings.CutSuffix(hx, stranger); ok && hx != "" {
			return hx + "@findermsg"
		}
	}
	h := sha256.Sum256([]byte(userName + "\x00" + myUserName))
	return hex.EncodeToString(h[:]) + "@findermsg"
}

// defaultStranger is the sender of an account's messages when Inject is
// not told one, derived from the wId so that it needs no rng draw.
func defaultStranger(wID string) string {
	h := sha256.Sum256([]byte("stranger\x00" + wID))
	return "fv1_" + hex.EncodeToString(h[:]) + "@findermsgstranger"
}

// The keyBuff is base64 of "dst/<wId>/<n>": everything up to the n-th
// message of the log delivered. Naming the wId makes a cursor passed to
// the wrong account a refusal rather than a silent jump.
const keyBuffPrefix = "dst/"

func encodeKeyBuff(wID string, n int) string {
	return base64.StdEncoding.EncodeToString([]byte(keyBuffPrefix + wID + "/" + strconv.Itoa(n)))
}

// decodeKeyBuff returns the position a keyBuff of account wID names, "" being
// the start; ok is false for anything this model did not issue.
func decodeKeyBuff(wID, keyBuff string, logLen int) (n int, ok bool) {
	if keyBuff == "" {
		return 0, true
	}
	raw, err := base64.StdEncoding.DecodeString(keyBuff)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(raw), keyBuffPrefix+wID+"/")
	if !ok {
		return 0, false
	}
	n, err = strconv.Atoi(rest)
	if err != nil || n < 0 || n > logLen || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}
