package rules

import (
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// TestReplyImageRendersItsURL: reply_image is a template like reply, and
// its action carries the URL as Image, never as Text.
func TestReplyImageRendersItsURL(t *testing.T) {
	t.Parallel()
	set, err := Compile(Options{}, Source{Name: "image.yaml", Data: []byte(`rules:
  - name: price-list
    when: msg.Text startsWith "价格表" && !msg.FromSelf
    actions:
      - reply_image: "https://img.example.com/{{ msg.Text }}.png"
`)})
	if err != nil {
		t.Fatal(err)
	}
	m := sdk.Message{ID: 1, Type: sdk.TypeText, Text: "价格表", From: "fv1_a@findermsgstranger", Session: "a@findermsg"}
	acts := set.Match(nil, &m, "shop", time.Now(), nil)
	if len(acts) != 1 || acts[0].Kind != KindReplyImage || acts[0].Image != "https://img.example.com/价格表.png" || acts[0].Text != "" {
		t.Fatalf("actions %+v", acts)
	}
	if got, want := acts[0].String(), `{rule: price-list, reply_image: "https://img.example.com/价格表.png"}`; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
}
