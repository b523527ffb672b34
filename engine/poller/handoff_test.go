package poller

import (
	"context"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/handoff"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// TestPersonsMessagePausesTheRestOfItsPage: a person's message from the
// phone pauses its conversation for the messages after it on the same
// page — the rules see conversation.Paused, and no reply is queued there —
// while another conversation is answered; the pause is committed with the
// page.
func TestPersonsMessagePausesTheRestOfItsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.NewMemory(store.Options{})
	sk := &sink{}
	set, err := rules.Compile(rules.Options{}, rules.Source{Name: "r.yaml", Data: []byte(`rules:
  - name: answer
    when: msg.Text == "在吗" && !msg.FromSelf && !conversation.Paused
    actions:
      - reply: "在的"
  - name: paused
    when: msg.Text == "在吗" && conversation.Paused
    actions:
      - reply: "paused"
      - send: {to: "wxid_boss", text: "有人在处理"}
`)})
	if err != nil {
		t.Fatal(err)
	}
	reg := handoff.New(30*time.Minute, false)
	now := time.Now()
	p := New("shop", Deps{Store: st, Sink: sk, Rules: func() *rules.Set { return set }, Handoff: reg, Now: func() time.Time { return now }})
	own := sdk.Message{ID: 1, Type: sdk.TypeText, Text: "我来", Content: "我来", From: "me@finder", To: "u1", Session: "sess-u1", FromSelf: true, Time: now}
	page := &upstream.Page{KeyBuff: "k", Messages: []sdk.Message{own, text(2, "u1", "在吗"), text(3, "u2", "在吗")}}
	if _, err := p.Commit(ctx, page, now); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range sk.items {
		got = append(got, it.Kind+":"+it.Conversation+":"+it.Text)
	}
	want := []string{"send:to:wxid_boss:有人在处理", "reply:sess-u2:在的"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("queued %q, want %q", got, want)
	}
	if ps, _ := st.Pauses(ctx, now); len(ps) != 1 || ps[0].Conv != "sess-u1" || ps[0].MsgID != 1 {
		t.Fatalf("stored pauses %+v", ps)
	}
	if _, ok := reg.Paused("shop", "sess-u1", now); !ok {
		t.Fatal("the registry did not hear of the pause")
	}
}
