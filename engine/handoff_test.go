package engine

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

const stranger2 = "fv1_2222@findermsgstranger"

// handoffEvents returns the conversation events on the daemon's bus.
func handoffEvents(h *harness) []events.Event {
	var out []events.Event
	for _, e := range h.d.Events().Recent(0) {
		if strings.HasPrefix(e.Kind, "conversation.") {
			out = append(out, e)
		}
	}
	return out
}

// answeredAfterBarrier injects text from the default stranger, then a
// barrier from another stranger, waits for the barrier's reply and reports
// whether text was answered by then. The barrier comes later in the
// stream, so its reply proves the page with text committed.
func answeredAfterBarrier(t *testing.T, h *harness, wcID, text string) bool {
	t.Helper()
	if _, err := h.sim.Inject(wcID, sim.Text("", text)); err != nil {
		t.Fatal(err)
	}
	tag := "echo barrier " + text
	if _, err := h.sim.Inject(wcID, sim.Text(stranger2, tag)); err != nil {
		t.Fatal(err)
	}
	for {
		sent := h.sent(len(h.sim.Sent()) + 1)
		for _, s := range sent {
			if s.Content == tag {
				for _, s := range h.sim.Sent() {
					if s.Content == text {
						return true
					}
				}
				// Nothing for text was queued either.
				convs, err := h.d.Conversations(h.ctx, "shop", 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range convs {
					for _, m := range c.Messages {
						if m.Text == text && len(m.Actions) > 0 {
							t.Fatalf("%q queued %+v", text, m.Actions)
						}
					}
				}
				return false
			}
		}
	}
}

// TestPhoneReplyPausesTheConversation: a message a person sends from the
// phone into a conversation pauses the bot there (event, status), a
// further one extends the pause, other conversations go on, and resuming
// hands it back.
func TestPhoneReplyPausesTheConversation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	if !answeredAfterBarrier(t, h, wcID, "echo 1") {
		t.Fatal("echo 1 was not answered before any takeover")
	}
	if got := handoffEvents(h); len(got) != 0 {
		t.Fatalf("the bot's own replies were taken for a person's: %+v", got)
	}
	if _, err := h.sim.Inject(wcID, sim.OwnText("", "您好，我是店主，我来处理")); err != nil {
		t.Fatal(err)
	}
	if answeredAfterBarrier(t, h, wcID, "echo 2") {
		t.Fatal("echo 2 was answered in a conversation a person took over")
	}
	paused := h.d.Paused("shop")
	if len(paused) != 1 || !strings.HasSuffix(paused[0].Conv, "@findermsg") || paused[0].Until.Before(time.Now().Add(29*time.Minute)) {
		t.Fatalf("paused = %+v, want the one conversation for 30m", paused)
	}
	ev := handoffEvents(h)
	if len(ev) != 1 || ev[0].Kind != events.KindHandoff || !strings.Contains(ev[0].Message, paused[0].Conv) {
		t.Fatalf("events %+v, want one %s", ev, events.KindHandoff)
	}
	first := paused[0].Until
	if _, err := h.sim.Inject(wcID, sim.Message{Type: sim.TypeText, Content: "稍等", FromSelf: true, Time: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if answeredAfterBarrier(t, h, wcID, "echo 3") {
		t.Fatal("echo 3 was answered in a paused conversation")
	}
	if p := h.d.Paused("shop"); len(p) != 1 || !p[0].Until.After(first) {
		t.Fatalf("the person's second message did not extend the pause: %+v, first until %v", p, first)
	}
	if len(handoffEvents(h)) != 1 {
		t.Fatalf("an extension was announced as a new handoff: %+v", handoffEvents(h))
	}
	// The operator resumes it through the admin API.
	resume := func() int {
		resp, err := http.Post("http://"+h.d.AdminAddr()+"/api/accounts/shop/conversations/"+paused[0].Conv+"/resume", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := resume(); code != http.StatusOK {
		t.Fatalf("resume answered %d", code)
	}
	if code := resume(); code != http.StatusNotFound {
		t.Fatalf("second resume answered %d, want 404", code)
	}
	if !answeredAfterBarrier(t, h, wcID, "echo 4") {
		t.Fatal("echo 4 was not answered after resume")
	}
	if ev := handoffEvents(h); len(ev) != 2 || ev[1].Kind != events.KindResumed {
		t.Fatalf("events %+v, want the handoff then %s", ev, events.KindResumed)
	}
}

// TestBotEchoesNeverPause: the echoes of the bot's own replies — text and
// image, equal texts, answers cut or malformed after the upstream accepted
// them, so that only the echo settles them — never pause a conversation.
func TestBotEchoesNeverPause(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	writeFile(t, filepath.Join(h.cfg.Rules[0], "image.yaml"), imageRules)
	writeFile(t, filepath.Join(h.cfg.Rules[0], "same.yaml"), `rules:
  - name: same
    when: msg.Text startsWith "same" && !msg.FromSelf
    actions:
      - reply: "收到"
`)
	h.start()
	for _, f := range []sim.Fault{
		{Endpoint: "/privateSend", Kind: sim.FaultAcceptedMalformed, Rate: 0.3},
		{Endpoint: "/privateSend", Kind: sim.FaultTruncated, Rate: 0.2},
		{Endpoint: "/privateSendImg", Kind: sim.FaultAcceptedMalformed, Rate: 0.3},
		{Endpoint: "/privateSendImg", Kind: sim.FaultTruncated, Rate: 0.2},
	} {
		if _, err := h.sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	_, wcID := h.online("shop")
	var msgs []sim.Message
	for i := range 30 {
		from := []string{"", stranger2, "fv1_3333@findermsgstranger"}[i%3]
		text := []string{fmt.Sprintf("echo %d", i), "same", fmt.Sprintf("价格表%d", i)}[i%3]
		msgs = append(msgs, sim.Text(from, text))
	}
	if _, err := h.sim.Inject(wcID, msgs...); err != nil {
		t.Fatal(err)
	}
	h.sent(30)
	// Every reply's echo has been read once a later reply went out after
	// a page that came after them all.
	// A barrier in each conversation: a conversation's replies go in
	// order, a reply in doubt holding those after it until its echo is
	// read, so once the three are out every echo before them was read.
	for _, from := range []string{"", stranger2, "fv1_3333@findermsgstranger"} {
		if _, err := h.sim.Inject(wcID, sim.Text(from, "echo barrier "+from)); err != nil {
			t.Fatal(err)
		}
	}
	for barriers := 0; barriers < 3; {
		barriers = 0
		for _, s := range h.sent(len(h.sim.Sent()) + 1) {
			if strings.HasPrefix(s.Content, "echo barrier") {
				barriers++
			}
		}
	}
	h.barrier(wcID, len(h.sim.Sent())+1)
	if p := h.d.Paused("shop"); len(p) != 0 {
		t.Fatalf("the bot's own echoes paused %+v", p)
	}
	if ev := handoffEvents(h); len(ev) != 0 {
		t.Fatalf("events %+v", ev)
	}
}

// TestHandoffOff: with handoff.pause 0, a message from the phone pauses
// nothing and the bot answers on.
func TestHandoffOff(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	h.cfg.Handoff.Pause = 0
	h.start()
	_, wcID := h.online("shop")
	if _, err := h.sim.Inject(wcID, sim.OwnText("", "我来")); err != nil {
		t.Fatal(err)
	}
	if !answeredAfterBarrier(t, h, wcID, "echo 1") {
		t.Fatal("echo 1 was not answered with takeover off")
	}
	if p := h.d.Paused(""); len(p) != 0 || len(handoffEvents(h)) != 0 {
		t.Fatalf("paused %+v, events %+v", p, handoffEvents(h))
	}
}
