package poller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// committed is an Observer that records Committed.
type committed struct {
	nopObserver
	mu    sync.Mutex
	calls []string
}

func (c *committed) Committed(account string, n int) {
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprint(account, " ", n))
	c.mu.Unlock()
}

// TestPageGoesIntoTheConversationLog: the commit of a page carries its new
// messages for the conversation log — the account's own among them, in
// their conversation — with the rules they fired and the actions they
// queued; Committed counts the received ones once the page is committed,
// and not for a commit that failed.
func TestPageGoesIntoTheConversationLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &failingStore{Memory: store.NewMemory(store.Options{}), fail: true}
	obs := &committed{}
	set := loadRules(t)
	p := New("shop", Deps{Store: st, Sink: &sink{}, Rules: func() *rules.Set { return set }, Cooldowns: rules.NewCooldowns(0), Observer: obs})
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	hello := text(1, "u1", "哈喽")
	hello.Time = at
	own := sdk.Message{ID: 2, Type: sdk.TypeText, Text: "你好", From: "me@finder", To: "u1", Session: "sess-u1", FromSelf: true, Time: at.Add(time.Second)}
	ownNoSession := sdk.Message{ID: 3, Type: sdk.TypeText, Text: "typed on the phone", From: "me@finder", To: "u2", FromSelf: true, Time: at.Add(2 * time.Second)}
	other := text(4, "u2", "随便")
	other.Session, other.Time = "", at.Add(3*time.Second) // no session: the conversation is the other party
	page := &upstream.Page{KeyBuff: "k1", Messages: []sdk.Message{hello, own, ownNoSession, other}}
	if _, err := p.Commit(ctx, page, at); err == nil {
		t.Fatal("the failing commit succeeded")
	}
	if len(obs.calls) != 0 {
		t.Fatalf("Committed heard of a failed commit: %v", obs.calls)
	}
	if _, err := p.Commit(ctx, page, at); err != nil {
		t.Fatal(err)
	}
	if strings.Join(obs.calls, ",") != "shop 2" {
		t.Fatalf("Committed calls = %v, want one with the 2 received messages", obs.calls)
	}
	convs, err := st.Conversations(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range convs {
		for _, m := range c.Messages {
			line := fmt.Sprintf("%s %d own=%v %q", c.ID, m.ID, m.Own, m.Text)
			for _, a := range m.Actions {
				line += fmt.Sprintf(" [%s %s %q]", a.Rule, a.Kind, a.Text)
			}
			got = append(got, line+" rules="+strings.Join(m.Rules, "+"))
		}
	}
	want := []string{
		`u2 3 own=true "typed on the phone" rules=`,
		`u2 4 own=false "随便" rules=`,
		`sess-u1 1 own=false "哈喽" [hello reply "你好"] rules=hello`,
		`sess-u1 2 own=true "你好" rules=`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
