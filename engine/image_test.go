package engine

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

const imageRules = `rules:
  - name: price-list
    when: msg.Text startsWith "价格表" && !msg.FromSelf
    actions:
      - reply_image: "https://img.example.com/{{ msg.Text }}.png"
`

// TestImageReplyExactlyOnceAcrossSIGKILL kills the daemon with SIGKILL at
// random moments while image replies are due, with some /privateSendImg
// answers cut or malformed after the upstream accepted them, restarts it,
// and checks at the simulated upstream that every image went out exactly
// once. All the requests are in one conversation and their echoes carry
// no URL, so only the order of the echoes can settle the replies in doubt.
func TestImageReplyExactlyOnceAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts real daemon processes")
	}
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true})
	defer srv.Close()
	for _, kind := range []sim.FaultKind{sim.FaultAcceptedMalformed, sim.FaultTruncated} {
		if _, err := srv.AddFault(sim.Fault{Endpoint: "/privateSendImg", Kind: kind, Rate: 0.15}); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := crashConfig(t, t.TempDir(), srv.URL, "wxid_img", imageRules)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var logs bytes.Buffer
	start := daemonStarter(t, ctx, cfgPath, &logs)

	rounds, perRound := 12, 5
	want := map[string]bool{}
	killRounds(t, start, rounds, func(r int) {
		for i := range perRound {
			text := fmt.Sprintf("价格表%d-%d", r, i)
			want["https://img.example.com/"+text+".png"] = true
			if _, err := srv.Inject("wxid_img", sim.Text("", text)); err != nil {
				t.Fatal(err)
			}
		}
	})
	stop := lastRun(start)
	defer stop()
	images := func() map[string]int {
		n := map[string]int{}
		for _, s := range srv.Sent() {
			if s.Endpoint == "/privateSendImg" {
				n[s.ImgURL]++
			}
		}
		return n
	}
	for len(images()) < len(want) {
		if _, err := srv.WaitSent(ctx, len(srv.Sent())+1); err != nil {
			t.Fatalf("%v\nsent %d of %d images\ndaemon log:\n%s", err, len(images()), len(want), logs.String())
		}
	}
	// A last image through the same conversation: once it is out, every
	// reply in doubt before it was settled (a conversation's replies go in
	// order, a doubt holding the ones after it).
	barrier := "https://img.example.com/价格表final.png"
	if _, err := srv.Inject("wxid_img", sim.Text("", "价格表final")); err != nil {
		t.Fatal(err)
	}
	for images()[barrier] == 0 {
		if _, err := srv.WaitSent(ctx, len(srv.Sent())+1); err != nil {
			t.Fatalf("%v\ndaemon log:\n%s", err, logs.String())
		}
	}
	got := images()
	dups := 0
	for url := range want {
		switch c := got[url]; {
		case c == 0:
			t.Errorf("%s was never sent", url)
		case c > 1:
			dups++
			t.Errorf("%s was sent %d times", url, c)
		}
	}
	for _, s := range srv.Sent() {
		if s.Endpoint != "/privateSendImg" || !strings.HasSuffix(s.SessionID, "@findermsg") || s.ToUserName == "" {
			t.Errorf("unexpected send %+v", s)
		}
	}
	t.Logf("%d rounds killed with SIGKILL, %d image replies, %d sends, %d duplicates", rounds, len(want), len(srv.Sent()), dups)
}

// TestImageReplyInDoubtSettledByItsEcho: an image reply whose answer was
// cut after the upstream accepted it is settled by its image echo, never
// sent twice; the next image in its conversation goes out after it.
func TestImageReplyInDoubtSettledByItsEcho(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	writeFile(t, filepath.Join(h.cfg.Rules[0], "image.yaml"), imageRules)
	h.start()
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSendImg", Kind: sim.FaultTruncated, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, wcID := h.online("shop")
	for _, text := range []string{"价格表1", "价格表2"} {
		if _, err := h.sim.Inject(wcID, sim.Text("", text)); err != nil {
			t.Fatal(err)
		}
	}
	h.sent(2)
	s := h.barrier(wcID, 3)
	if s[0].ImgURL != "https://img.example.com/价格表1.png" || s[1].ImgURL != "https://img.example.com/价格表2.png" {
		t.Fatalf("sent %+v", s)
	}
}

// TestSettledDoubtReleasesItsConversation: a text reply in doubt settled by
// its echo lets the reply queued behind it go at once, with nothing else
// arriving to wake the account's worker.
func TestSettledDoubtReleasesItsConversation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultTruncated, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, wcID := h.online("shop")
	if _, err := h.sim.Inject(wcID, sim.Text("", "echo 1"), sim.Text("", "echo 2")); err != nil {
		t.Fatal(err)
	}
	if s := h.sent(2); s[0].Content != "echo 1" || s[1].Content != "echo 2" {
		t.Fatalf("sent %s", describeSent(s))
	}
}

// TestPluginImageReply: a plugin's image reply goes out through
// /privateSendImg like a rule's; one whose image is not an http(s) URL is
// refused into the dead letters with the reason, nothing sent.
func TestPluginImageReply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	t.Parallel()
	pluginDir := buildPlugin(t, t.TempDir(), "imageplugin", "./testdata/imageplugin")
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	writeFile(t, filepath.Join(h.cfg.Rules[0], "picture.yaml"), `rules:
  - name: picture
    when: msg.Text startsWith "picture" && !msg.FromSelf
    actions:
      - plugin: imageplugin.picture
`)
	h.cfg.Plugins.Dir = pluginDir
	h.start()
	_, wcID := h.online("shop")
	if _, err := h.sim.Inject(wcID, sim.Text("", "picture bad"), sim.Text("", "picture cat")); err != nil {
		t.Fatal(err)
	}
	s := h.sent(1)
	if s[0].Endpoint != "/privateSendImg" || s[0].ImgURL != "https://img.example.com/picture cat.png" {
		t.Fatalf("sent %+v", s[0])
	}
	dead, err := h.d.Store().DeadLetters(h.ctx, 0)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, `reply 1: image "ftp://img.example.com/bad.png" is not an http:// or https:// URL`) {
		t.Fatalf("dead letters %+v, %v", dead, err)
	}
}
