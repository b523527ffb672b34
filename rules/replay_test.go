package rules

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestReplaySeedPage replays the real /syncFinder page of the upstream
// documentation through the example rules, with explanations.
func TestReplaySeedPage(t *testing.T) {
	t.Parallel()
	for name, explain := range map[string]bool{"replay": false, "replay_explain": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := ReplayFile(&out, Options{}, []string{"../examples/rules"}, "../engine/upstream/sim/seed_page.json", ReplayOptions{Account: "shop", Explain: explain})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "testdata/"+name+".golden", out.String())
		})
	}
}

func TestDecodeReply(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("../engine/upstream/sim/seed_page.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		data  string
		items int
		err   string
	}{
		"whole reply":   {string(seed), 19, ""},
		"data object":   {`{"list": [], "keyBuff": "abc"}`, 0, ""},
		"failure reply": {`{"code": "1001", "message": "失败", "data": null}`, 0, "code 1001: 失败"},
		"no data":       {`{"code": "1000", "message": "ok"}`, 0, "has no data"},
		"not json":      {`<html>`, 0, "replay"},
		"no keyBuff":    {`{"list": []}`, 0, "keyBuff is missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := DecodeReply([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Messages) != tc.items {
				t.Errorf("%d messages, want %d", len(p.Messages), tc.items)
			}
		})
	}
}
