package dst

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
)

// DefaultMaxPage is the page size bound used when Faults.MaxPage is 0. The
// documented real page holds 19 messages.
const DefaultMaxPage = 20

// Faults are the probabilities, each in [0, 1], with which Upstream
// misbehaves. The zero Faults is a perfect upstream.
//
// Every /privateSend, /sendText and /getSessionId call draws one number
// that picks at most one of the send shapes, so their sum must not exceed
// 1. /getSessionId accepts nothing, so for it the "accepted" shapes differ
// from the others only in their error. Every /syncFinder call draws one
// number that picks at most one of SyncTransport, Repeat and Replay (sum at
// most 1), then draws Duplicate, JunkNoID and JunkBadID each on its own.
type Faults struct {
	// Refuse answers code "1001" ("失败"): an *upstream.Error. Not accepted.
	Refuse float64
	// Offline answers code "1001" with an offline message: an
	// *upstream.Error with Offline set. Not accepted.
	Offline float64
	// Unwritten fails the connection before the request was written (a
	// refused dial): an *upstream.TransportError. Not accepted.
	Unwritten float64
	// Cut accepts the send, then cuts the answer's body short: an
	// *upstream.TransportError.
	Cut float64
	// Malformed accepts the send, then answers something the client cannot
	// read (a truncated envelope, or data without newMsgId): an
	// *upstream.MalformedError.
	Malformed float64
	// Late accepts the send, but the answer comes after the client's
	// deadline: the clock advances past CallTimeout and the call fails with
	// an *upstream.TransportError wrapping context.DeadlineExceeded.
	Late float64
	// Dropped loses the written request on the way: the clock advances past
	// CallTimeout and the call fails as Late does. Not accepted, so the
	// client cannot tell it from Late.
	Dropped float64
	// Status502Accepted accepts the send, but a proxy answers HTTP 502: an
	// *upstream.StatusError.
	Status502Accepted float64
	// Status502Lost answers HTTP 502 from a proxy that never passed the
	// request on: the same *upstream.StatusError. Not accepted.
	Status502Lost float64

	// SyncTransport fails a /syncFinder call with an
	// *upstream.TransportError, either before the request was written or
	// with the page cut short (the rng picks).
	SyncTransport float64
	// Repeat serves the page after the cursor but answers with the
	// request's own keyBuff (for "", one naming the start), so the cursor
	// does not move and the next call gets the same messages again.
	Repeat float64
	// Replay serves an older page again, exactly as first served, with its
	// keyBuff: a page that ended at or before the request's cursor, so the
	// cursor moves back and the page holds only messages already served.
	// When there is none it serves the normal page.
	Replay float64
	// Duplicate repeats one item of the page right after itself (the same
	// NewMsgId twice in a row).
	Duplicate float64
	// JunkNoID inserts an item without a NewMsgId into the page. It is a
	// text from JunkFrom, in no account's log. Whatever upstream.DecodePage makes
	// of it is what SyncFinder returns.
	JunkNoID float64
	// JunkBadID inserts an item whose NewMsgId is the string "x". When
	// upstream.DecodePage fails the page on it, SyncFinder returns that failure
	// as an *upstream.MalformedError, as the real client does.
	JunkBadID float64

	// MaxPage bounds pages: each holds between 1 and MaxPage of the
	// messages after the cursor (the rng picks). 0 means DefaultMaxPage.
	MaxPage int
	// CallTimeout is the client's deadline, which Late and Dropped outlast.
	// 0 means upstream.DefaultCallTimeout.
	CallTimeout time.Duration
}

// weighted is one probability of Faults with the field it comes from and
// the shape it makes.
type weighted struct {
	field string
	p     float64
	shape Shape
}

// sends is the exclusive group of send shapes, in the order of the draw.
func (f *Faults) sends() []weighted {
	return []weighted{
		{"Refuse", f.Refuse, ShapeRefuse}, {"Offline", f.Offline, ShapeOffline},
		{"Unwritten", f.Unwritten, ShapeUnwritten}, {"Cut", f.Cut, ShapeCut},
		{"Malformed", f.Malformed, ShapeMalformed}, {"Late", f.Late, ShapeLate},
		{"Dropped", f.Dropped, ShapeDropped}, {"Status502Accepted", f.Status502Accepted, ShapeStatus502Accepted},
		{"Status502Lost", f.Status502Lost, ShapeStatus502Lost},
	}
}

// syncs is the exclusive group of /syncFinder shapes, in the order of the
// draw.
func (f *Faults) syncs() []weighted {
	return []weighted{
		{"SyncTransport", f.SyncTransport, ShapeSyncTransport}, {"Repeat", f.Repeat, ShapeRepeat},
		{"Replay", f.Replay, ShapeReplay},
	}
}

// Validate reports the first probability outside [0, 1], an exclusive
// group summing to more than 1, or a negative bound.
func (f Faults) Validate() error {
	page := []weighted{{"Duplicate", f.Duplicate, ShapeDuplicate}, {"JunkNoID", f.JunkNoID, ShapeJunkNoID},
		{"JunkBadID", f.JunkBadID, ShapeJunkBadID}}
	for _, group := range [][]weighted{f.sends(), f.syncs(), page} {
		for _, w := range group {
			if !(w.p >= 0 && w.p <= 1) {
				return fmt.Errorf("dst: faults: %s is %v, not within [0, 1]", w.field, w.p)
			}
		}
	}
	for _, group := range []struct {
		what string
		ws   []weighted
	}{{"the send shapes", f.sends()}, {"SyncTransport, Repeat and Replay", f.syncs()}} {
		var sum float64
		for _, w := range group.ws {
			sum += w.p
		}
		// A small tolerance, so that nine shapes of 1/9 each are not
		// refused for rounding.
		if sum > 1+1e-9 {
			return fmt.Errorf("dst: faults: %s sum to %v, more than 1", group.what, sum)
		}
	}
	if f.MaxPage < 0 {
		return fmt.Errorf("dst: faults: MaxPage is %d, negative", f.MaxPage)
	}
	if f.CallTimeout < 0 {
		return fmt.Errorf("dst: faults: CallTimeout is %v, negative", f.CallTimeout)
	}
	return nil
}

func (f Faults) maxPage() int {
	if f.MaxPage == 0 {
		return DefaultMaxPage
	}
	return f.MaxPage
}

func (f Faults) callTimeout() time.Duration {
	if f.CallTimeout == 0 {
		return upstream.DefaultCallTimeout
	}
	return f.CallTimeout
}

// Shape names a fault that hit a call, as recorded in Call and Delivery.
type Shape string

// The shapes, one per probability of Faults.
const (
	// ShapeRefuse is Faults.Refuse.
	ShapeRefuse Shape = "refuse"
	// ShapeOffline is Faults.Offline.
	ShapeOffline Shape = "offline"
	// ShapeUnwritten is Faults.Unwritten.
	ShapeUnwritten Shape = "unwritten"
	// ShapeCut is Faults.Cut.
	ShapeCut Shape = "cut"
	// ShapeMalformed is Faults.Malformed.
	ShapeMalformed Shape = "malformed"
	// ShapeLate is Faults.Late.
	ShapeLate Shape = "late"
	// ShapeDropped is Faults.Dropped.
	ShapeDropped Shape = "dropped"
	// ShapeStatus502Accepted is Faults.Status502Accepted.
	ShapeStatus502Accepted Shape = "502-accepted"
	// ShapeStatus502Lost is Faults.Status502Lost.
	ShapeStatus502Lost Shape = "502-lost"
	// ShapeSyncTransport is Faults.SyncTransport.
	ShapeSyncTransport Shape = "sync-transport"
	// ShapeRepeat is Faults.Repeat.
	ShapeRepeat Shape = "repeat"
	// ShapeReplay is Faults.Replay.
	ShapeReplay Shape = "replay"
	// ShapeDuplicate is Faults.Duplicate.
	ShapeDuplicate Shape = "duplicate"
	// ShapeJunkNoID is Faults.JunkNoID.
	ShapeJunkNoID Shape = "junk-no-id"
	// ShapeJunkBadID is Faults.JunkBadID.
	ShapeJunkBadID Shape = "junk-bad-id"
)

// drawSend picks the send shape of one call, "" for none.
func (u *Upstream) drawSend() Shape { return u.draw(u.faults.sends()) }

// drawSync picks the exclusive /syncFinder shape of one call, "" for none.
func (u *Upstream) drawSync() Shape { return u.draw(u.faults.syncs()) }

// draw picks at most one shape of an exclusive group with one number, so
// each shape gets exactly its probability.
func (u *Upstream) draw(group []weighted) Shape {
	r := u.rng.Float64()
	for _, w := range group {
		if r < w.p {
			return w.shape
		}
		r -= w.p
	}
	return ""
}

// transportError is the one place the model builds an
// *upstream.TransportError. written says whether the whole request reached
// the wire, which decides whether the failure proves a refusal
// (upstream.Rejected).
func transportError(endpoint string, written bool, err error) error {
	return &upstream.TransportError{Endpoint: endpoint, Written: written, Err: err}
}

// errDialRefused is what a dial to a closed port returns, before any byte
// of the request is written.
var errDialRefused error = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// cutBody is the client's error for a reply body that ended early.
func cutBody(endpoint string) error {
	return transportError(endpoint, true, fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF))
}

// deadline is the client's error when its call timeout expired after the
// request was written.
func deadline(endpoint string) error {
	return transportError(endpoint, true, context.DeadlineExceeded)
}

// Wkteam refusals, worded as the upstream words them so that the client's
// default patterns would classify them the same way.
const (
	codeFail       = upstream.CodeFail
	msgFail        = "失败"
	msgNotOnline   = "该实例不在线"
	msgBadKeyBuff  = "keyBuff无效"
	msgMissingArgs = "参数错误: "
)

func refusal(endpoint, msg string) error {
	return &upstream.Error{Endpoint: endpoint, Code: codeFail, Message: msg}
}

func offline(endpoint string) error {
	return &upstream.Error{Endpoint: endpoint, Code: codeFail, Message: msgNotOnline, Offline: true}
}

// badGateway is a proxy's 502, with the HTML body nginx sends.
func badGateway(endpoint string) error {
	return &upstream.StatusError{
		Endpoint:   endpoint,
		StatusCode: http.StatusBadGateway,
		Body:       "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
	}
}

// malformed returns one of the two unreadable answers the real client
// reports: an envelope cut at a point the rng picks but delivered as if
// whole, so the client reads bad JSON rather than a short body; or a whole
// envelope whose data lacks what the endpoint needs.
func (u *Upstream) malformed(endpoint string) error {
	if u.rng.IntN(2) == 0 {
		body := []byte(`{"code":"1000","message":"处理成功","data":{"type":1,"msgId":1,"newMsgId":1152921504606846977,"createTime":1767196800}}`)
		cut := 1 + u.rng.IntN(len(body)-1)
		var v struct{}
		// A strict prefix of an object never parses, so err is the
		// decoder's own complaint about this cut.
		err := json.Unmarshal(body[:cut], &v)
		return &upstream.MalformedError{Endpoint: endpoint, Reason: "not a JSON reply envelope", Err: err}
	}
	if endpoint == endpointSessionID {
		return &upstream.MalformedError{Endpoint: endpoint, Reason: "data is null"}
	}
	return &upstream.MalformedError{Endpoint: endpoint, Reason: "data.newMsgId is missing"}
}
