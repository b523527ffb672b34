package dst

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// everyFault turns on every shape at once.
var everyFault = Faults{
	Refuse: .05, Offline: .05, Unwritten: .05, Cut: .05, Malformed: .05, Late: .05, Dropped: .05,
	Status502Accepted: .05, Status502Lost: .05,
	SyncTransport: .1, Repeat: .1, Replay: .1, Duplicate: .1, JunkNoID: .05, JunkBadID: .05,
	MaxPage: 6, CallTimeout: 10 * time.Second,
}

// transcript drives an Upstream through a mixed run, as a simple poller
// and outbox would, and returns everything it answered: pages, answers,
// errors, then Accepted and Calls.
func transcript(t *testing.T, seed uint64) []byte {
	t.Helper()
	clock := NewClock()
	u := NewUpstream(rand.New(rand.NewPCG(seed, 1)), clock, everyFault)
	// The script's own choices come from a second stream, so that they do
	// not shift when the model draws more or fewer numbers.
	script := rand.New(rand.NewPCG(seed, 2))
	wIDs := []string{"wid-a", "wid-b"}
	for i, w := range wIDs {
		u.AddAccount(w, fmt.Sprintf("v2_finder%d@finder", i))
	}
	cursors := make([]string, len(wIDs))
	var out bytes.Buffer
	emit := func(what string, v any, err error) {
		b, jerr := json.Marshal(v)
		if jerr != nil {
			t.Fatalf("marshal %s: %v", what, jerr)
		}
		fmt.Fprintf(&out, "%s %s err=%v\n", what, b, err)
	}
	ctx := t.Context()
	for step := range 400 {
		w := script.IntN(len(wIDs))
		switch script.IntN(6) {
		case 0:
			id := u.Inject(wIDs[w], Incoming{From: fmt.Sprintf("fv1_%02x@findermsgstranger", script.IntN(8)), Text: fmt.Sprint("q", step)})
			emit("inject", id, nil)
		case 1:
			emit("inject", u.Inject(wIDs[w], Notice("functionmsg", "cmdid", "6407")), nil)
		case 2:
			clock.Advance(time.Duration(script.IntN(5000)) * time.Millisecond)
		case 3:
			sent, err := u.SendText(ctx, testToken, upstream.SendTextRequest{WID: wIDs[w], WcID: "wxid_friend", Content: fmt.Sprint("t", step)})
			emit("sendText", sent, err)
		default:
			p, err := u.SyncFinder(ctx, testToken, wIDs[w], cursors[w])
			emit("page", p, err)
			if err != nil {
				continue
			}
			cursors[w] = p.KeyBuff
			for i := range p.Messages {
				m := &p.Messages[i]
				if m.FromSelf || m.Type != sdk.TypeText {
					continue
				}
				req := upstream.ReplyTo(wIDs[w], m, "re: "+m.Text)
				if script.IntN(4) == 0 {
					s, err := u.GetSessionID(ctx, testToken, upstream.SessionIDRequest{WID: wIDs[w], ToUserName: m.From, MyUserName: m.To})
					emit("session", s, err)
				}
				sent, err := u.PrivateSend(ctx, testToken, req)
				emit("privateSend", sent, err)
			}
		}
	}
	emit("accepted", u.Accepted(), nil)
	emit("calls", u.Calls(), nil)
	emit("clock", clock.Now(), nil)
	return out.Bytes()
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 42, 1 << 40} {
		a, b := transcript(t, seed), transcript(t, seed)
		if !bytes.Equal(a, b) {
			i := 0
			for i < len(a) && i < len(b) && a[i] == b[i] {
				i++
			}
			t.Fatalf("seed %d: two runs differ at byte %d:\n%s\n---\n%s", seed, i, a[max(0, i-200):min(len(a), i+200)], b[max(0, i-200):min(len(b), i+200)])
		}
	}
	if bytes.Equal(transcript(t, 1), transcript(t, 2)) {
		t.Fatal("seeds 1 and 2 gave the same run: the rng decides nothing")
	}
}

// TestTranscriptExercisesEveryShape keeps the determinism test honest: its
// run goes through every fault.
func TestTranscriptExercisesEveryShape(t *testing.T) {
	t.Parallel()
	var all bytes.Buffer
	for seed := range uint64(5) {
		all.Write(transcript(t, seed))
	}
	for _, s := range []Shape{ShapeRefuse, ShapeOffline, ShapeUnwritten, ShapeCut, ShapeMalformed, ShapeLate, ShapeDropped,
		ShapeStatus502Accepted, ShapeStatus502Lost, ShapeSyncTransport, ShapeRepeat, ShapeReplay, ShapeDuplicate,
		ShapeJunkNoID, ShapeJunkBadID} {
		if !bytes.Contains(all.Bytes(), []byte(`"`+string(s)+`"`)) {
			t.Errorf("no call hit %s", s)
		}
	}
}
