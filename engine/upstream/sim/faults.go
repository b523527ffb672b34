package sim

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// FaultKind is what a Fault does to the calls it hits.
type FaultKind string

// Fault kinds. Whether a kind performs the call before it spoils the answer
// matters to a client deciding if a failed send may be repeated: a call that
// was performed has had its effect (a /privateSend is recorded in Sent and
// echoed into the account's next /syncFinder) whatever the client received.
const (
	// FaultLatency delays the call by Fault.Latency (on the simulator's
	// clock), then performs it and answers normally.
	FaultLatency FaultKind = "latency"
	// FaultRefuse answers with the API's failure envelope ("1001" for
	// wkteam, code 500 for the other two) without performing the call.
	FaultRefuse FaultKind = "refuse"
	// FaultStatus answers with HTTP Fault.Status (default 502) and an HTML
	// body, as a failing proxy would, without performing the call.
	FaultStatus FaultKind = "status"
	// FaultMalformed answers 200 with a body that is not valid JSON,
	// without performing the call: a /privateSend sends nothing.
	FaultMalformed FaultKind = "malformed"
	// FaultAcceptedMalformed performs the call (a /privateSend is sent and
	// echoed), then replaces its answer with the malformed body of
	// FaultMalformed: the upstream acted, the client cannot tell.
	FaultAcceptedMalformed FaultKind = "accepted_malformed"
	// FaultTruncated performs the call (a /privateSend is sent and echoed),
	// then sends half of its answer and drops the connection.
	FaultTruncated FaultKind = "truncated"
	// FaultLate performs the call at once (a /privateSend is sent, and its
	// echo is in the next /syncFinder), then holds its answer for
	// Fault.Latency on the simulator's clock before writing it: the answer
	// that arrives after the client's call timeout. The answer is dropped
	// if the client goes away first, and written at once if the simulator
	// closes.
	FaultLate FaultKind = "late"
	// FaultDuplicate makes /syncFinder repeat up to Fault.Duplicates
	// (default 3) messages already delivered before the new ones.
	FaultDuplicate FaultKind = "duplicate"
	// FaultRepeatID makes a /syncFinder page repeat its first message
	// within the page: Fault.Duplicates (default 1) extra copies, same
	// NewMsgId, right after the original. The cursor is as without the
	// fault. A page without messages is left as it is, but the call still
	// counts against Fault.Count.
	FaultRepeatID FaultKind = "repeat_id"
	// FaultBadID adds two junk items to a /syncFinder page besides its real
	// messages: one without NewMsgId, first, and one whose NewMsgId is the
	// string "not-a-number", last. Every real message is delivered as
	// without the fault and the cursor is the same; empty pages get the
	// junk too.
	FaultBadID FaultKind = "bad_id"
)

// pageEndpoint is the one endpoint whose answer is a page of messages, the
// only one FaultDuplicate, FaultRepeatID and FaultBadID can change.
const pageEndpoint = "/syncFinder"

// Fault makes some calls fail. Add one with AddFault.
type Fault struct {
	// Endpoint is the path the fault applies to, for example "/syncFinder"
	// or "/wx/pc/check-login-status"; "" means every API endpoint (never the
	// control API), except for the kinds that change /syncFinder pages,
	// where it means "/syncFinder".
	Endpoint string `json:"endpoint,omitempty"`
	// Kind is what the fault does.
	Kind FaultKind `json:"kind"`
	// Rate is the probability that a matching call is hit, in (0, 1];
	// 0 means every matching call.
	Rate float64 `json:"rate,omitempty"`
	// Count is how many calls the fault hits before it retires; 0 means no
	// limit.
	Count int `json:"count,omitempty"`
	// Latency is FaultLatency's delay and how long FaultLate holds the
	// answer.
	Latency time.Duration `json:"latency,omitempty"`
	// Status is FaultStatus's HTTP status; 0 means 502.
	Status int `json:"status,omitempty"`
	// Duplicates is FaultDuplicate's number of repeated messages (0 means
	// 3) and FaultRepeatID's number of extra copies (0 means 1).
	Duplicates int `json:"duplicates,omitempty"`
}

type activeFault struct {
	Fault
	id    int
	fired atomic.Int64
}

// validate checks a fault and fills in its defaults.
func (f *Fault) validate() error {
	switch f.Kind {
	case FaultLatency, FaultLate:
		if f.Latency <= 0 {
			return fmt.Errorf("sim: fault %s: latency must be positive", f.Kind)
		}
	case FaultStatus:
		if f.Status == 0 {
			f.Status = http.StatusBadGateway
		}
		if f.Status < 100 || f.Status > 599 {
			return fmt.Errorf("sim: fault %s: %d is not an HTTP status", f.Kind, f.Status)
		}
	case FaultDuplicate:
		if f.Duplicates == 0 {
			f.Duplicates = 3
		}
		if f.Endpoint == "" {
			f.Endpoint = pageEndpoint
		}
	case FaultRepeatID:
		if f.Duplicates == 0 {
			f.Duplicates = 1
		}
		if f.Duplicates < 0 {
			return fmt.Errorf("sim: fault %s: duplicates %d is negative", f.Kind, f.Duplicates)
		}
		fallthrough
	case FaultBadID:
		if f.Endpoint == "" {
			f.Endpoint = pageEndpoint
		}
		if f.Endpoint != pageEndpoint {
			return fmt.Errorf("sim: fault %s: endpoint %q: only %s answers with pages", f.Kind, f.Endpoint, pageEndpoint)
		}
	case FaultRefuse, FaultMalformed, FaultAcceptedMalformed, FaultTruncated:
	default:
		return fmt.Errorf("sim: fault kind %q: want latency, refuse, status, malformed, accepted_malformed, truncated, late, duplicate, repeat_id or bad_id", f.Kind)
	}
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("sim: fault %s: rate %v is not within [0, 1]", f.Kind, f.Rate)
	}
	if f.Count < 0 {
		return fmt.Errorf("sim: fault %s: count %d is negative", f.Kind, f.Count)
	}
	return nil
}

// AddFault starts injecting f and returns its id for RemoveFault.
func (u *Upstream) AddFault(f Fault) (int, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	u.faultMu.Lock()
	defer u.faultMu.Unlock()
	u.faultID++
	var list []*activeFault
	if p := u.faults.Load(); p != nil {
		list = slices.Clone(*p)
	}
	list = append(list, &activeFault{Fault: f, id: u.faultID})
	u.faults.Store(&list)
	u.log.Info("fault added", "id", u.faultID, "kind", f.Kind, "endpoint", f.Endpoint)
	return u.faultID, nil
}

// RemoveFault stops the fault with the given id; it reports whether there
// was one.
func (u *Upstream) RemoveFault(id int) bool {
	u.faultMu.Lock()
	defer u.faultMu.Unlock()
	p := u.faults.Load()
	if p == nil {
		return false
	}
	list := slices.DeleteFunc(slices.Clone(*p), func(f *activeFault) bool { return f.id == id })
	u.faults.Store(&list)
	return len(list) != len(*p)
}

// ClearFaults stops every fault.
func (u *Upstream) ClearFaults() {
	u.faultMu.Lock()
	defer u.faultMu.Unlock()
	u.faults.Store(nil)
}

// Faults returns the active faults by id.
func (u *Upstream) Faults() map[int]Fault {
	out := map[int]Fault{}
	if p := u.faults.Load(); p != nil {
		for _, f := range *p {
			out[f.id] = f.Fault
		}
	}
	return out
}

// hit reports whether the fault hits this call, counting it if so.
func (f *activeFault) hit(endpoint string) bool {
	if f.Endpoint != "" && f.Endpoint != endpoint {
		return false
	}
	if f.Rate > 0 && f.Rate < 1 && rand.Float64() >= f.Rate {
		return false
	}
	if f.Count > 0 && f.fired.Add(1) > int64(f.Count) {
		return false
	}
	return true
}

type apiFlavour int

const (
	faultWkteam apiFlavour = iota // string codes
	faultInt                      // int codes
)

// pageFaults is what the faults hitting a /syncFinder call do to its page;
// withFaults passes it to the handler in the request's context.
type pageFaults struct {
	prior  int  // messages already delivered to repeat before the new ones
	repeat int  // extra copies of the page's first message
	junk   bool // add the items with a missing and a non-numeric NewMsgId
}

type pageFaultsKey struct{}

// malformedBody is the answer of FaultMalformed and FaultAcceptedMalformed:
// a wkteam success cut off mid-object.
const malformedBody = `{"code":"1000","message":"处理成功","data":{"list":[{"content":{"msg":`

// withFaults wraps an endpoint's handler with the active faults. With none
// active it costs one atomic load.
func (u *Upstream) withFaults(endpoint string, fl apiFlavour, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !isJSON(r) {
			unsupportedType(w)
			return
		}
		p := u.faults.Load()
		if p == nil || len(*p) == 0 {
			h(w, r)
			return
		}
		var (
			outcome *activeFault
			page    pageFaults
		)
		for _, f := range *p {
			if !f.hit(endpoint) {
				continue
			}
			switch f.Kind {
			case FaultLatency:
				select {
				case <-u.clock.After(f.Latency):
				case <-r.Context().Done():
					return
				case <-u.done:
				}
			case FaultDuplicate:
				page.prior += f.Duplicates
			case FaultRepeatID:
				page.repeat += f.Duplicates
			case FaultBadID:
				page.junk = true
			default:
				if outcome == nil {
					outcome = f
				}
			}
		}
		if page != (pageFaults{}) {
			r = r.WithContext(context.WithValue(r.Context(), pageFaultsKey{}, page))
		}
		if outcome == nil {
			h(w, r)
			return
		}
		switch outcome.Kind {
		case FaultRefuse:
			if fl == faultWkteam {
				wkFail(w, msgFail)
			} else {
				intReply(w, 500, "系统繁忙,请稍后再试", nil)
			}
		case FaultStatus:
			body := fmt.Sprintf("<html><head><title>%[1]d %[2]s</title></head><body><center><h1>%[1]d %[2]s</h1></center></body></html>\n",
				outcome.Status, http.StatusText(outcome.Status))
			writeBody(w, outcome.Status, "text/html", []byte(body))
		case FaultMalformed:
			writeBody(w, http.StatusOK, jsonCType, []byte(malformedBody))
		case FaultAcceptedMalformed:
			h(&recorder{header: http.Header{}, status: http.StatusOK}, r)
			writeBody(w, http.StatusOK, jsonCType, []byte(malformedBody))
		case FaultLate:
			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			h(rec, r)
			select {
			case <-u.clock.After(outcome.Latency):
			case <-r.Context().Done():
				return
			case <-u.done:
			}
			rec.replay(w)
		case FaultTruncated:
			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			h(rec, r)
			body := rec.body.Bytes()
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.status)
			_, _ = w.Write(body[:len(body)/2])
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
	})
}

// recorder captures a reply so that a fault can mangle it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// replay writes the captured reply to w.
func (r *recorder) replay(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}
