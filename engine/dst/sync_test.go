package dst

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// injectMix appends n messages of every kind the log holds and returns
// their ids in log order.
func injectMix(u *Upstream, wID string, n int) []uint64 {
	var out []uint64
	for i := range n {
		var m Incoming
		switch i % 5 {
		case 0, 1:
			m = Incoming{From: fmt.Sprintf("fv1_%04x@findermsgstranger", i%7), Text: fmt.Sprintf("msg %d", i)}
		case 2:
			m = Incoming{FromSelf: true, Text: fmt.Sprintf("typed on the phone %d", i)}
		case 3:
			m = Notice("finderliveclosenotifymsg", "live_id", fmt.Sprint(i), "object_id", "14192909587060689023")
		case 4:
			m = Incoming{From: "wxid_plain", Text: "<b>&amp;</b>"}
		}
		out = append(out, u.Inject(wID, m))
	}
	return out
}

func TestPagesDeliverTheLogInOrder(t *testing.T) {
	t.Parallel()
	for _, maxPage := range []int{1, 2, 7, 0} {
		for seed := range uint64(20) {
			u, _ := newTestUpstream(seed, Faults{MaxPage: maxPage})
			want := injectMix(u, testWID, 37)
			msgs, kb := drain(t, u, testWID, "")
			if !slices.Equal(ids(msgs), want) {
				t.Fatalf("MaxPage %d seed %d: pages hold %v, want %v", maxPage, seed, ids(msgs), want)
			}
			// Caught up: the keyBuff stays put until something new arrives.
			p, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
			if err != nil || len(p.Messages) != 0 || p.KeyBuff != kb {
				t.Fatalf("caught-up page %+v, %v: want empty with keyBuff %q", p, err, kb)
			}
			more := injectMix(u, testWID, 3)
			msgs, _ = drain(t, u, testWID, kb)
			if !slices.Equal(ids(msgs), more) {
				t.Fatalf("after more messages the pages hold %v, want %v", ids(msgs), more)
			}
		}
	}
}

func TestPageSizeBound(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(1, Faults{MaxPage: 4})
	injectMix(u, testWID, 200)
	sizes := map[int]int{}
	kb := ""
	for {
		p, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) == 0 {
			break
		}
		sizes[len(p.Messages)]++
		kb = p.KeyBuff
	}
	for n := 1; n <= 4; n++ {
		if sizes[n] == 0 {
			t.Errorf("no page of %d messages: %v", n, sizes)
		}
	}
	if len(sizes) != 4 {
		t.Errorf("page sizes %v, want 1 to 4", sizes)
	}
}

func TestMessageShapes(t *testing.T) {
	t.Parallel()
	u, clock := newTestUpstream(7, Faults{})
	const explicit = 3876235366388279544
	stranger := u.Inject(testWID, Incoming{From: "fv1_abcd@findermsgstranger", Text: "你好"})
	clock.Advance(3600e9)
	own := u.Inject(testWID, Incoming{FromSelf: true, To: "fv1_abcd@findermsgstranger", Text: "mine"})
	notice := u.Inject(testWID, Notice("finderliveclosenotifymsg", "live_id", "2042557163204371840", "object_id", "1"))
	given := u.Inject(testWID, Incoming{ID: explicit, Text: "explicit"})
	msgs, _ := drain(t, u, testWID, "")
	if len(msgs) != 4 {
		t.Fatalf("pages hold %v", ids(msgs))
	}
	s, o, n, g := msgs[0], msgs[1], msgs[2], msgs[3]
	if s.ID != stranger || s.ID <= 1<<53 || s.FromSelf || s.From != "fv1_abcd@findermsgstranger" || s.To != testFinder ||
		s.Session != "abcd@findermsg" || s.Text != "你好" || s.Type != sdk.TypeText || !s.Time.Equal(Start) {
		t.Errorf("stranger's message decoded as %+v", s)
	}
	if o.ID != own || !o.FromSelf || o.From != testFinder || o.To != "fv1_abcd@findermsgstranger" ||
		o.Session != "abcd@findermsg" || !o.Time.Equal(Start.Add(3600e9)) {
		t.Errorf("owner's message decoded as %+v", o)
	}
	if n.ID != notice || n.Type != sdk.TypeSystem || n.RawType != sdk.RawSysMsg || n.From != "" || n.Session != "" ||
		n.Sys == nil || n.Sys.Type != "finderliveclosenotifymsg" || n.Sys.Field("live_id") != "2042557163204371840" || n.ParseError != "" {
		t.Errorf("notice decoded as %+v (sys %+v)", n, n.Sys)
	}
	if g.ID != given || given != explicit || g.From != defaultStranger(testWID) {
		t.Errorf("explicit id: got %d (%+v), want %d", g.ID, g, uint64(explicit))
	}
	if s.ID == own || own == notice || s.Seq >= o.Seq || o.Seq >= n.Seq {
		t.Errorf("ids or seqs not distinct and growing: %+v", msgs)
	}
}

// TestFaultySyncOnlyRepeats syncs through every /syncFinder fault and
// checks what a poller relies on: each message it has not seen before is
// the next one of the log (nothing lost, nothing reordered), a replayed
// page holds only messages seen before, and a repeated page leaves the
// keyBuff where it was.
func TestFaultySyncOnlyRepeats(t *testing.T) {
	t.Parallel()
	f := Faults{SyncTransport: .15, Repeat: .25, Replay: .25, Duplicate: .3, JunkNoID: .1, JunkBadID: .1, MaxPage: 5}
	hits := map[Shape]int{}
	for seed := range uint64(30) {
		u, _ := newTestUpstream(seed, f)
		var log []uint64
		seen := map[uint64]bool{}
		next, kb := 0, ""
		for i := 0; i < 3000 && (len(log) < 60 || next < len(log)); i++ {
			if i%4 == 0 && len(log) < 60 {
				log = append(log, injectMix(u, testWID, 1+i%3)...)
			}
			p, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
			c := u.calls[len(u.calls)-1]
			for _, s := range c.Shapes {
				hits[s]++
			}
			if err != nil {
				var te *upstream.TransportError
				var me *upstream.MalformedError
				if !errors.As(err, &te) && !errors.As(err, &me) {
					t.Fatalf("seed %d: SyncFinder: %v (%T)", seed, err, err)
				}
				if errors.As(err, &me) && !slices.Contains(c.Shapes, ShapeJunkBadID) {
					t.Fatalf("seed %d: malformed page without a bad id: %v", seed, err)
				}
				continue
			}
			for _, m := range p.Messages {
				switch {
				case m.ID == 0 && m.From == JunkFrom:
					// The junk item without a NewMsgId, as today's decoder
					// delivers it.
				case seen[m.ID]:
					if m.ID == 0 {
						t.Fatalf("seed %d: id 0 from %q", seed, m.From)
					}
				case slices.Contains(c.Shapes, ShapeReplay):
					t.Fatalf("seed %d: a replayed page brought the new message %d", seed, m.ID)
				case next >= len(log) || m.ID != log[next]:
					t.Fatalf("seed %d: new message %d, want the log's next (%d of %v)", seed, m.ID, next, log)
				default:
					seen[m.ID] = true
					next++
				}
			}
			if slices.Contains(c.Shapes, ShapeRepeat) && kb != "" && p.KeyBuff != kb {
				t.Fatalf("seed %d: a repeated page moved the keyBuff from %q to %q", seed, kb, p.KeyBuff)
			}
			kb = p.KeyBuff
		}
		if next != len(log) {
			t.Fatalf("seed %d: delivered %d of %d messages", seed, next, len(log))
		}
	}
	for _, s := range []Shape{ShapeSyncTransport, ShapeRepeat, ShapeReplay, ShapeDuplicate, ShapeJunkNoID, ShapeJunkBadID} {
		if hits[s] == 0 {
			t.Errorf("shape %s never hit: %v", s, hits)
		}
	}
}

func TestSyncTransportShapes(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(3, Faults{SyncTransport: 1})
	injectMix(u, testWID, 5)
	var unwritten, cut int
	for range 100 {
		_, err := u.SyncFinder(t.Context(), testToken, testWID, "")
		var te *upstream.TransportError
		if !errors.As(err, &te) || te.Endpoint != "/syncFinder" || !upstream.Retryable(err) {
			t.Fatalf("err = %v, want a retryable transport error", err)
		}
		if bytes.Contains([]byte(err.Error()), []byte("connection refused")) {
			unwritten++
		} else {
			cut++
		}
	}
	if unwritten == 0 || cut == 0 {
		t.Fatalf("%d refused dials and %d cut pages, want both", unwritten, cut)
	}
}

func TestDuplicateIsAdjacent(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(4, Faults{Duplicate: 1, MaxPage: 6})
	injectMix(u, testWID, 30)
	kb := ""
	for range 10 {
		p, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
		if err != nil {
			t.Fatal(err)
		}
		pairs := 0
		for i := 1; i < len(p.Messages); i++ {
			if p.Messages[i].ID == p.Messages[i-1].ID {
				pairs++
			}
		}
		if pairs != 1 {
			t.Fatalf("page %v has %d adjacent repeats, want 1", ids(p.Messages), pairs)
		}
		kb = p.KeyBuff
	}
}

// TestJunkItems checks that junk reaches the JSON and that SyncFinder
// answers exactly what upstream.DecodePage makes of it: today a bad id fails
// the page, which the model reports as the real client does; a decoder
// that learns to skip junk changes the answer here with no change to the
// model.
func TestJunkItems(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		f    Faults
		want string // in the page JSON
	}{
		"no id":  {Faults{JunkNoID: 1}, `"MsgSeq":0,"FromUserName"`},
		"bad id": {Faults{JunkBadID: 1}, `"NewMsgId":"x"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u, _ := newTestUpstream(5, tt.f)
			injectMix(u, testWID, 3)
			p, err := u.SyncFinder(t.Context(), testToken, testWID, "")
			data := u.lastData
			if !bytes.Contains(data, []byte(tt.want)) || !bytes.Contains(data, []byte(JunkFrom)) {
				t.Fatalf("page JSON lacks the junk item %s:\n%s", tt.want, data)
			}
			if items, withID := bytes.Count(data, []byte(`"syncKeyType"`)), bytes.Count(data, []byte(`"NewMsgId"`)); name == "no id" && items != withID+1 {
				t.Fatalf("%d items and %d NewMsgIds, want one item without", items, withID)
			}
			direct, derr := upstream.DecodePage(data)
			switch {
			case derr != nil:
				var me *upstream.MalformedError
				if !errors.As(err, &me) || me.Endpoint != "/syncFinder" || me.Err == nil || me.Err.Error() != derr.Error() {
					t.Fatalf("DecodePage fails with %v; SyncFinder returned %v, want it as a MalformedError", derr, err)
				}
				t.Logf("upstream.DecodePage fails the page: %v", derr)
			case err != nil:
				t.Fatalf("SyncFinder: %v, but DecodePage accepts the page", err)
			default:
				if !slices.Equal(ids(p.Messages), ids(direct.Messages)) || p.KeyBuff != direct.KeyBuff {
					t.Fatalf("SyncFinder page %v differs from DecodePage's %v", ids(p.Messages), ids(direct.Messages))
				}
				t.Logf("upstream.DecodePage keeps %d of the items", len(direct.Messages))
			}
		})
	}
}

func TestKeyBuffs(t *testing.T) {
	t.Parallel()
	u, _ := newTestUpstream(6, Faults{Repeat: .2, Replay: .2, MaxPage: 3})
	u.AddAccount("wid-2", "v2_second@finder")
	want := injectMix(u, testWID, 25)
	issued := []string{""}
	kb := ""
	for range 200 {
		p, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
		if err != nil {
			t.Fatal(err)
		}
		kb = p.KeyBuff
		issued = append(issued, kb)
	}
	u.SetFaults(Faults{})
	for _, kb := range issued {
		msgs, _ := drain(t, u, testWID, kb)
		// Every cursor names a place in the log: what follows it is the
		// log's tail.
		if got := ids(msgs); !slices.Equal(got, want[len(want)-len(got):]) {
			t.Fatalf("after keyBuff %q the pages hold %v, not a tail of %v", kb, got, want)
		}
	}
	refused := map[string]string{
		"another account's":  encodeKeyBuff("wid-2", 0),
		"past the log":       encodeKeyBuff(testWID, len(want)+1),
		"not base64":         "%%%",
		"a real upstream's":  "CgUIARDaCQoECAIQAAoECAMQAAoECAQQAAoECAUQAAoECAYQAAoECAcQAAoECAgQAAoECAkQABAA",
		"negative":           base64.StdEncoding.EncodeToString([]byte("dst/" + testWID + "/-1")),
		"not canonical":      base64.StdEncoding.EncodeToString([]byte("dst/" + testWID + "/01")),
		"for another prefix": base64.StdEncoding.EncodeToString([]byte("dst/" + testWID + "x/1")),
	}
	for name, kb := range refused {
		_, err := u.SyncFinder(t.Context(), testToken, testWID, kb)
		var ue *upstream.Error
		if !errors.As(err, &ue) || ue.Code != "1001" || ue.Offline {
			t.Errorf("%s keyBuff %q: err = %v, want a 1001 refusal", name, kb, err)
		}
	}
}
