package dst

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// Upstream is a single-threaded model of the wkteam Finder API: accounts by
// wId, each with its message log, and the four calls the daemon makes
// (SyncFinder, PrivateSend, GetSessionID, SendText) with the signatures of
// *upstream.Client. Its rng decides every fault and page size, its Clock
// stamps every message. It is not safe for concurrent use: the simulation
// calls it from one goroutine, which is what makes a seed a reproduction.
type Upstream struct {
	rng    *rand.Rand
	clock  *Clock
	faults Faults

	accounts map[string]*account // looked up only, never iterated
	nextID   uint64

	accepted []Delivery
	calls    []Call

	// lastData is the "data" object of the last page rendered, so tests
	// can see the JSON that went through upstream.DecodePage.
	lastData []byte
}

// account is one login instance and its Finder message log.
type account struct {
	wID      string
	finder   string
	stranger string
	log      []entry
	// served are the latest pages served normally, oldest first, for the
	// Replay fault. Bounded, so a long run does not grow it forever.
	served []span
}

// span is the part [start, end) of a log that one page served.
type span struct{ start, end int }

// maxServed bounds account.served.
const maxServed = 64

// NewUpstream returns an upstream without accounts whose faults are drawn
// from rng, whose messages are stamped by clock, and which misbehaves as
// faults says. A nil rng or clock, or faults that do not Validate, are
// bugs in the harness and panic.
func NewUpstream(rng *rand.Rand, clock *Clock, faults Faults) *Upstream {
	if rng == nil || clock == nil {
		panic("dst: NewUpstream: rng and clock must not be nil")
	}
	if err := faults.Validate(); err != nil {
		panic(err.Error())
	}
	return &Upstream{
		rng:      rng,
		clock:    clock,
		faults:   faults,
		accounts: make(map[string]*account),
		// Real ids exceed 2^53; starting above 2^60 makes every id one a
		// float64 would mangle.
		nextID: 1<<60 + rng.Uint64N(1<<59),
	}
}

// SetFaults replaces the faults from the next call on; the harness turns
// them off for the final drain. Faults that do not Validate panic.
func (u *Upstream) SetFaults(f Faults) {
	if err := f.Validate(); err != nil {
		panic(err.Error())
	}
	u.faults = f
}

// AddAccount adds the login instance wID of the Finder identity
// finderName ("v2_…@finder"), with an empty log. An empty or repeated wID
// is a bug in the harness and panics.
func (u *Upstream) AddAccount(wID, finderName string) {
	if wID == "" || finderName == "" {
		panic("dst: AddAccount: wId and finder name must not be empty")
	}
	if u.accounts[wID] != nil {
		panic(fmt.Sprintf("dst: AddAccount: account %q exists", wID))
	}
	u.accounts[wID] = &account{wID: wID, finder: finderName, stranger: defaultStranger(wID)}
}

// Incoming is a message to append to an account's log with Inject. Zero
// fields get the defaults of a stranger's text message.
type Incoming struct {
	// ID is the NewMsgId; 0 picks a fresh one above 2^53, unique within
	// the Upstream. A given ID is used as is, even if it repeats one.
	ID uint64
	// Type is the MsgType: 0 means sdk.RawText. sdk.RawSysMsg makes a
	// system notice (see Notice), which has no From, To or Session.
	Type int
	// From and To are FromUserName and ToUserName. For a stranger's
	// message From defaults to the account's default stranger and To to
	// its finder name; for one the owner typed (FromSelf) the other way
	// round.
	From string
	To   string
	// Session is the msgSessionId; it defaults to the conversation's
	// session, the one GetSessionID returns for it.
	Session string
	// Text is the Content: the text, or the XML of a notice.
	Text string
	// FromSelf marks a message the account's owner typed on the phone
	// (isSender 1), which the daemon must never answer.
	FromSelf bool
}

// Notice returns a system notice (MsgType 10002) whose Content is
// <sysmsg type="sysType"><sysType>…</sysType></sysmsg> holding the given
// name, value pairs as child elements, in order. Nothing answers it.
func Notice(sysType string, pairs ...string) Incoming {
	var b strings.Builder
	fmt.Fprintf(&b, `<sysmsg type="%s"><%s>`, xmlEscape(sysType), sysType)
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", pairs[i], xmlEscape(pairs[i+1]), pairs[i])
	}
	fmt.Fprintf(&b, "</%s></sysmsg>", sysType)
	return Incoming{Type: sdk.RawSysMsg, Text: b.String()}
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }

// Inject appends m, its defaults filled in and stamped with the clock, to
// the log of account wID, and returns its NewMsgId. The account's next
// pages deliver it. An unknown wID is a bug in the harness and panics.
func (u *Upstream) Inject(wID string, m Incoming) uint64 {
	a := u.accounts[wID]
	if a == nil {
		panic(fmt.Sprintf("dst: Inject: no account %q", wID))
	}
	if m.Type == 0 {
		m.Type = sdk.RawText
	}
	if !isSystem(m.Type) {
		if m.FromSelf {
			m.From = orDefault(m.From, a.finder)
			m.To = orDefault(m.To, a.stranger)
			m.Session = orDefault(m.Session, sessionFor(m.To, m.From))
		} else {
			m.From = orDefault(m.From, a.stranger)
			m.To = orDefault(m.To, a.finder)
			m.Session = orDefault(m.Session, sessionFor(m.From, m.To))
		}
	}
	if m.ID == 0 {
		m.ID = u.newID()
	}
	a.append(&m, u.clock.Now())
	return m.ID
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// append adds m to the log and returns its seq, which is its position
// counted from 1, like the upstream's growing MsgSeq.
func (a *account) append(m *Incoming, now time.Time) int64 {
	seq := int64(len(a.log) + 1)
	a.log = append(a.log, entry{id: m.ID, item: render(m, seq, now.Unix())})
	return seq
}

// newID returns a fresh NewMsgId. The gaps between ids are random so that
// nothing can come to rely on ids being consecutive.
func (u *Upstream) newID() uint64 {
	u.nextID += 1 + u.rng.Uint64N(1<<16)
	return u.nextID
}

// Delivery is a send the upstream accepted.
type Delivery struct {
	// Endpoint is "/privateSend" or "/sendText".
	Endpoint string
	// WID is the sending instance.
	WID string
	// To is toUserName for /privateSend and wcId for /sendText.
	To string
	// My is myUserName; "" for /sendText.
	My string
	// Session is sessionId; "" for /sendText.
	Session string
	// Content is the text sent.
	Content string
	// NewMsgID is the id of the sent message: the answer's newMsgId and,
	// for /privateSend, the echo's NewMsgId.
	NewMsgID uint64
	// Time is the clock when the upstream accepted the send.
	Time time.Time
	// Shape is the fault that hit the call's answer, "" when the answer
	// arrived intact.
	Shape Shape
}

// Accepted returns every send the upstream accepted, in acceptance order,
// whether or not its answer reached the caller.
func (u *Upstream) Accepted() []Delivery { return slices.Clone(u.accepted) }

// Call is one call made to the upstream, for the trace of a failing seed.
type Call struct {
	// Endpoint is the path, for example "/syncFinder".
	Endpoint string
	// WID is the instance named in the request.
	WID string
	// Time is the clock when the call started.
	Time time.Time
	// Shapes are the faults that hit the call, in the order drawn; nil for
	// a clean call.
	Shapes []Shape
	// Accepted is true for a send the upstream accepted.
	Accepted bool
	// Err is the error returned, "" when there was none.
	Err string
}

// Calls returns every call made so far, in order.
func (u *Upstream) Calls() []Call {
	out := slices.Clone(u.calls)
	for i := range out {
		out[i].Shapes = slices.Clone(out[i].Shapes)
	}
	return out
}

func (u *Upstream) record(c Call, err error) {
	if err != nil {
		c.Err = err.Error()
	}
	u.calls = append(u.calls, c)
}
