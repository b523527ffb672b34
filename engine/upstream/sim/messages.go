package sim

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// seedPage is the /syncFinder reply of the upstream's documentation
// (003_94e3f1914ca82313.txt): 19 messages and their keyBuff.
//
//go:embed seed_page.json
var seedPage []byte

// SeedPage returns a copy of the seed reply: the complete /syncFinder
// reply of the upstream's documentation, envelope included.
func SeedPage() []byte { return bytes.Clone(seedPage) }

// SeedKeyBuff is the keyBuff of the seed page: the first /syncFinder of an
// account returns it with the seed messages.
const SeedKeyBuff = "CgUIARDaCQoECAIQAAoECAMQAAoECAQQAAoECAUQAAoECAYQAAoECAcQAAoECAgQAAoECAkQABAA"

// Message types of the upstream's MsgType field.
const (
	TypeText   = 1
	TypeImage  = 3
	TypeSystem = 10002
)

// Message is a message injected into an account's Finder message stream.
// Zero fields get defaults that make a realistic message.
type Message struct {
	// ID is the NewMsgId; 0 picks a fresh id above 2^53.
	ID uint64 `json:"id,string"`
	// Seq is the message's place in the stream. Inject sets it; it is
	// ignored on input.
	Seq int64 `json:"seq"`
	// Type is the MsgType: TypeText (the default), TypeImage, TypeSystem,
	// or any other number.
	Type int `json:"type"`
	// Content is the text, or the XML of an image or system notice.
	Content string `json:"content"`
	// From and To are FromUserName and ToUserName. For an incoming message
	// From defaults to the account's stranger ("fv1_…@findermsgstranger")
	// and To to the account's Finder name ("v2_…@finder"); for one sent by
	// the account itself, the other way round. System notices have neither.
	From string `json:"from"`
	To   string `json:"to"`
	// Session is the msgSessionId; it defaults to the conversation's id.
	Session string `json:"session"`
	// FromSelf marks a message the account sent itself (isSender 1).
	FromSelf bool `json:"fromSelf"`
	// Time is the CreateTime; zero means the simulator clock's now.
	Time time.Time `json:"time"`
}

// Text returns an incoming text message from from ("" for the account's
// default stranger).
func Text(from, text string) Message { return Message{Type: TypeText, From: from, Content: text} }

// OwnText returns a text message the account sent itself to to ("" for the
// account's default stranger), as the upstream echoes it.
func OwnText(to, text string) Message {
	return Message{Type: TypeText, To: to, Content: text, FromSelf: true}
}

// Notice returns a system notice <sysmsg type="sysType"> whose element
// holds the given name, value pairs as child elements, in order.
func Notice(sysType string, pairs ...string) Message {
	var b strings.Builder
	fmt.Fprintf(&b, `<sysmsg type="%s"><%s>`, xmlEscape(sysType), sysType)
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", pairs[i], xmlEscape(pairs[i+1]), pairs[i])
	}
	fmt.Fprintf(&b, "</%s></sysmsg>", sysType)
	return Message{Type: TypeSystem, Content: b.String()}
}

// LiveClosed returns the notice that a Finder live stream ended, like the
// seed page's finderliveclosenotifymsg items.
func LiveClosed(liveID, objectID string) Message {
	tips := objectID + "_13_18"
	return Notice("finderliveclosenotifymsg",
		"live_id", liveID, "object_id", objectID, "revoke_id", tips, "tips_id", tips,
		"functionmsgid", "FinderLiveNotificationMsg_"+objectID+"_11_"+objectID+"_11")
}

// Image returns an incoming image message from from ("" for the account's
// default stranger), with <img> attributes like the seed page's.
func Image(from string) Message {
	key, md5, cdn := randHex(16), randHex(16), "3057020100044b3049020100020439047520020"+randHex(40)
	content := fmt.Sprintf("<?xml version=\"1.0\"?>\n<msg>\n\t<img aeskey=\"%[1]s\" encryver=\"1\" cdnthumbaeskey=\"%[1]s\" cdnthumburl=\"%[2]s\" cdnthumblength=\"2940\" cdnthumbheight=\"120\" cdnthumbwidth=\"80\" cdnmidheight=\"0\" cdnmidwidth=\"0\" cdnhdheight=\"0\" cdnhdwidth=\"0\" cdnmidimgurl=\"%[2]s\" length=\"113874\" cdnbigimgurl=\"%[2]s\" hdlength=\"52127\" md5=\"%[3]s\" />\n\t<platform_signature></platform_signature>\n\t<imgdatahash></imgdatahash>\n</msg>\n", key, cdn, md5)
	return Message{Type: TypeImage, From: from, Content: content}
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }

// stored is one message of a stream, rendered once as its /syncFinder item.
type stored struct {
	seq  int64
	id   uint64
	item []byte
}

// account is one WeChat account (wcId) and its Finder message stream.
type account struct {
	wcID       string
	nickName   string
	finderName string
	stranger   string
	uin        int64
	owner      *member // guarded by Upstream.mu
	current    string  // the online wId; guarded by Upstream.mu

	mu      sync.Mutex
	msgs    []*stored // in seq order
	lastSeq int64
}

// seedItems are the seed page's items, shared by every account.
var seedItems = sync.OnceValue(func() []*stored {
	var page struct {
		Data struct {
			List []json.RawMessage `json:"list"`
		} `json:"data"`
	}
	if err := json.Unmarshal(seedPage, &page); err != nil {
		panic("sim: embedded seed page: " + err.Error())
	}
	items := make([]*stored, 0, len(page.Data.List))
	for _, raw := range page.Data.List {
		var it struct {
			Content struct {
				Msg struct {
					NewMsgID uint64 `json:"NewMsgId"`
				} `json:"msg"`
				Seq int64 `json:"seq"`
			} `json:"content"`
		}
		if err := json.Unmarshal(raw, &it); err != nil {
			panic("sim: embedded seed page item: " + err.Error())
		}
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			panic("sim: embedded seed page item: " + err.Error())
		}
		items = append(items, &stored{seq: it.Content.Seq, id: it.Content.Msg.NewMsgID, item: c.Bytes()})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	return items
})

// accountLocked returns the account wcID, creating it (with the seed page
// unless NoSeed) if it is new. u.mu must be held for writing.
func (u *Upstream) accountLocked(wcID string) *account {
	if a := u.accounts[wcID]; a != nil {
		return a
	}
	a := newAccount(wcID)
	if !u.opts.NoSeed {
		seed := seedItems()
		a.msgs = append(make([]*stored, 0, len(seed)+8), seed...)
		a.lastSeq = seed[len(seed)-1].seq
	}
	u.accounts[wcID] = a
	return a
}

// newAccount returns account wcID with no messages; its names derive from
// wcID alone, so that they survive a restart without being stored.
func newAccount(wcID string) *account {
	h := sha256.Sum256([]byte(wcID))
	hx := hex.EncodeToString(h[:])
	g := sha256.Sum256([]byte("stranger\x00" + wcID))
	return &account{
		wcID:       wcID,
		nickName:   "模拟用户 " + wcID,
		finderName: "v2_060000231003b20faec8" + hx[:54] + "@finder",
		stranger:   "fv1_" + hex.EncodeToString(g[:]) + "@findermsgstranger",
		uin:        int64(h[0])<<24 | int64(h[1])<<16 | int64(h[2])<<8 | int64(h[3]),
	}
}

// add fills in the messages' defaults, appends them to the stream and
// returns them as stored.
func (a *account) add(u *Upstream, msgs ...Message) []Message {
	now := u.clock.Now()
	out := make([]Message, len(msgs))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, m := range msgs {
		if m.Type == 0 {
			m.Type = TypeText
		}
		if m.ID == 0 {
			m.ID = u.newID()
		}
		if m.Time.IsZero() {
			m.Time = now
		}
		if m.Type != TypeSystem && m.Type != 10000 {
			if m.FromSelf {
				m.From = cmp(m.From, a.finderName)
				m.To = cmp(m.To, a.stranger)
				m.Session = cmp(m.Session, sessionFor(m.To, m.From))
			} else {
				m.From = cmp(m.From, a.stranger)
				m.To = cmp(m.To, a.finderName)
				m.Session = cmp(m.Session, sessionFor(m.From, m.To))
			}
		}
		a.lastSeq++
		m.Seq = a.lastSeq
		a.msgs = append(a.msgs, &stored{seq: m.Seq, id: m.ID, item: render(&m)})
		out[i] = m
	}
	return out
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type wireString struct {
	String string `json:"string"`
}

// render returns the /syncFinder item of m, shaped like the seed page's.
func render(m *Message) []byte {
	type imgBuf struct {
		ILen int `json:"iLen"`
	}
	type msg struct {
		Status       int        `json:"Status"`
		ImgBuf       imgBuf     `json:"ImgBuf"`
		Content      wireString `json:"Content"`
		CreateTime   int64      `json:"CreateTime"`
		MsgSeq       int64      `json:"MsgSeq"`
		NewMsgID     uint64     `json:"NewMsgId"`
		FromUserName wireString `json:"FromUserName"`
		ToUserName   wireString `json:"ToUserName"`
		MsgType      int        `json:"MsgType"`
		ImgStatus    int        `json:"ImgStatus"`
		MsgID        int64      `json:"MsgId"`
		MsgSource    string     `json:"MsgSource"`
	}
	type content struct {
		Msg          msg    `json:"msg"`
		ExtInfo      string `json:"extinfo,omitempty"`
		IsSender     int    `json:"isSender"`
		MsgSessionID string `json:"msgSessionId"`
		Seq          int64  `json:"seq"`
	}
	type item struct {
		SyncKeyType int     `json:"syncKeyType"`
		ItemType    int     `json:"itemType"`
		SubType     int     `json:"subType"`
		Content     content `json:"content"`
	}
	c := content{
		Msg: msg{
			Status: 3, Content: wireString{m.Content}, CreateTime: m.Time.Unix(), MsgSeq: m.Seq,
			NewMsgID: m.ID, FromUserName: wireString{m.From}, ToUserName: wireString{m.To},
			MsgType: m.Type, ImgStatus: 1, MsgID: m.Seq,
		},
		MsgSessionID: m.Session,
		Seq:          m.Seq,
	}
	if m.Type != TypeSystem && m.Type != 10000 {
		c.ExtInfo = "CAIQAw=="
	}
	if m.Type == TypeImage {
		c.Msg.ImgStatus = 2
		c.Msg.MsgSource = "<msgsource><bizflag>0</bizflag></msgsource>"
	}
	if m.FromSelf {
		c.IsSender = 1
	}
	return marshal(item{SyncKeyType: 1, ItemType: 1, Content: c})
}

// Inject appends messages to the Finder message stream of WeChat account
// wcID (creating the account if it is new) and returns them with their
// defaults, ids and sequence numbers filled in. Instances of the account
// receive them on their next /syncFinder.
func (u *Upstream) Inject(wcID string, msgs ...Message) ([]Message, error) {
	if wcID == "" {
		return nil, fmt.Errorf("sim: inject: wcId is empty")
	}
	u.mu.Lock()
	a := u.accountLocked(wcID)
	u.mu.Unlock()
	out := a.add(u, msgs...)
	if err := u.save(); err != nil {
		return nil, fmt.Errorf("sim: inject: %w", err)
	}
	return out, nil
}

// junkItems returns FaultBadID's items for account a: a text from its
// stranger without NewMsgId, and one whose NewMsgId is the string
// "not-a-number". Their seq is 0, below any real message's, so that a
// client reading seqs is not moved by them.
func (a *account) junkItems(now time.Time) (noID, badID []byte) {
	const id = `,"NewMsgId":0,` // as render writes a zero ID
	m := Message{Type: TypeText, From: a.stranger, To: a.finderName, Session: sessionFor(a.stranger, a.finderName), Time: now}
	m.Content = "sim: junk item without NewMsgId"
	noID = bytes.Replace(render(&m), []byte(id), []byte(","), 1)
	m.Content = "sim: junk item with a non-numeric NewMsgId"
	badID = bytes.Replace(render(&m), []byte(id), []byte(`,"NewMsgId":"not-a-number",`), 1)
	return noID, badID
}

func (u *Upstream) syncFinder(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID     string `json:"wId"`
		KeyBuff string `json:"keyBuff"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	in, a := u.online(w, m, req.WID)
	if in == nil {
		return
	}
	cursor, err := decodeKeyBuff(req.KeyBuff)
	if err != nil {
		wkFail(w, msgBadKeyBuff)
		return
	}
	pf, _ := r.Context().Value(pageFaultsKey{}).(pageFaults)
	var junkNoID, junkBadID []byte
	if pf.junk {
		junkNoID, junkBadID = a.junkItems(u.clock.Now())
	}

	b := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(b)
	b.Reset()
	b.WriteString(`{"code":"1000","message":"处理成功","data":{"list":[`)
	items := 0
	item := func(data []byte) {
		if items > 0 {
			b.WriteByte(',')
		}
		b.Write(data)
		items++
	}
	if pf.junk {
		item(junkNoID)
	}
	a.mu.Lock()
	start := sort.Search(len(a.msgs), func(i int) bool { return a.msgs[i].seq > cursor })
	from := max(start-pf.prior, 0)
	end := min(start+u.opts.PageSize, len(a.msgs))
	for i := from; i < end; i++ {
		item(a.msgs[i].item)
		if i == from {
			for range pf.repeat {
				item(a.msgs[i].item)
			}
		}
	}
	// The cursor comes from the real messages alone, so that no fault
	// moves it.
	next := cursor
	if end > start {
		next = a.msgs[end-1].seq
	}
	a.mu.Unlock()
	if pf.junk {
		item(junkBadID)
	}
	kb := req.KeyBuff
	if next != cursor || kb == "" {
		kb = encodeKeyBuff(next)
	}
	b.WriteString(`],"keyBuff":"`)
	b.WriteString(kb)
	b.WriteString(`"}}`)
	in.mu.Lock()
	moved := in.keyBuff != kb
	in.keyBuff = kb
	in.mu.Unlock()
	if moved && !u.saved(w) {
		return
	}
	writeBody(w, http.StatusOK, jsonCType, b.Bytes())
}
