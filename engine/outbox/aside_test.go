package outbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// TestSlowPluginCallsHoldOnlyTheirConversations: with PluginCalls, plugin
// actions of one account run side by side, up to the limit, each holding
// its own conversation, while a reply in another conversation goes out;
// the answers are queued once the calls end.
func TestSlowPluginCallsHoldOnlyTheirConversations(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	up := &fakeUpstream{}
	started := make(chan string, 3)
	release := make(chan struct{})
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	ob := New(Config{MaxAttempts: 5, RetryBackoff: time.Second, Doubt: doubt, PluginCalls: 2}, Deps{
		Store: st, Sender: up, Sessions: online{}, Now: clk.Now,
		Plugins: func(ctx context.Context, it store.Item) ([]store.Item, error) {
			started <- it.Conversation
			<-release
			return []store.Item{{Account: it.Account, Kind: store.KindReply, Text: "answer " + it.Conversation, To: "x", My: "me", Session: it.Conversation, Conversation: it.Conversation}}, nil
		},
	})
	var items []store.Item
	for _, conv := range []string{"a", "b", "c"} {
		items = append(items, store.Item{Account: "shop", Kind: store.KindPlugin, Plugin: "llm", Action: "answer", Conversation: conv})
	}
	items = append(items, store.Item{Account: "shop", Kind: store.KindReply, Text: "faq", To: "x", My: "me", Session: "d", Conversation: "d"})
	saved, err := st.Enqueue(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	ob.Add(saved)
	for range 6 {
		ob.Step(context.Background(), "shop")
	}
	got := []string{<-started, <-started}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("calls started in %q, want a and b", got)
	}
	select {
	case c := <-started:
		t.Fatalf("a third call started (%s) past the limit of 2", c)
	default:
	}
	if !slices.Equal(up.accepted, []string{"faq"}) {
		t.Fatalf("sent %q while the plugin calls were under way, want the reply of d", up.accepted)
	}
	close(release)
	for range 4 { // c's call, then the answers
		ob.Close() // waits for the calls aside
		for range 5 {
			ob.Step(context.Background(), "shop")
		}
	}
	for _, want := range []string{"answer a", "answer b", "answer c"} {
		if !slices.Contains(up.accepted, want) {
			t.Errorf("%q was not sent: %q", want, up.accepted)
		}
	}
}
