package main

import (
	"strings"
	"testing"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

func TestCounter(t *testing.T) {
	t.Parallel()
	host := sdktest.NewHost()
	p := sdktest.Start(t, &counter{}, host)
	ctx := t.Context()
	handle := func(action string, params map[string]string, from string) *sdk.HandleResponse {
		t.Helper()
		var msg *sdk.Message
		if from != "" {
			msg = sdktest.Text("hi")
			msg.From = from
		}
		resp, err := p.Handle(ctx, &sdk.HandleRequest{Action: action, Params: params, Message: msg, Account: "shop"})
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		return resp
	}
	reply := map[string]string{"reply": "第 {n} 条"}

	for i, want := range []string{"第 1 条", "第 2 条"} {
		if got := handle("count", reply, "alice").Replies[0].Text; got != want {
			t.Errorf("count %d: %q, want %q", i, got, want)
		}
	}
	if got := handle("count", reply, "bob").Replies[0].Text; got != "第 1 条" {
		t.Errorf("bob: %q", got)
	}
	if resp := handle("count", map[string]string{"reply": ""}, "bob"); len(resp.Replies) != 0 {
		t.Errorf("empty reply param still replied: %+v", resp)
	}
	resp := handle("report", map[string]string{"to": "wxid_boss"}, "")
	if want := (sdk.Send{To: "wxid_boss", Text: "shop: 2 users sent 4 messages"}); len(resp.Sends) != 1 || resp.Sends[0] != want {
		t.Errorf("report = %+v, want %+v", resp.Sends, want)
	}
	handle("reset", nil, "alice")
	if got := handle("count", reply, "alice").Replies[0].Text; got != "第 1 条" {
		t.Errorf("after reset: %q", got)
	}
	if v, _, _ := host.Get(ctx, "count/shop/bob"); string(v) != "2" {
		t.Errorf("stored count/shop/bob = %q, want 2", v)
	}

	// A cron tick has no sender to count.
	_, err := p.Handle(ctx, &sdk.HandleRequest{Action: "count", Tick: &sdk.Tick{Schedule: "hourly"}})
	if err == nil || !strings.Contains(err.Error(), "needs a message with a sender") {
		t.Errorf("count on a tick: %v", err)
	}
}
