package console

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/console/browsertest"
)

// TestPagesInBrowser signs in with a real browser and checks every page
// over the fake backend, whose data reaches states the daemon's test does
// not: a slider link next to a QR code, an SMS code, hostile text, a
// dead letter in doubt, a tried message.
func TestPagesInBrowser(t *testing.T) {
	browsertest.Require(t)
	const token = "browser-test-token"
	srv := httptest.NewServer(New(newFake(), Options{Token: token, Loopback: true}))
	t.Cleanup(srv.Close)
	zh := messages[langZH]
	b := browsertest.Start(t, srv.URL, "zh-CN")

	b.Open("/")
	if loc := b.Location(); !strings.HasPrefix(loc, srv.URL+"/signin") {
		t.Fatalf("/ without a session went to %s, want the sign-in page", loc)
	}
	b.Accessibility("sign-in")
	b.Type(b.LabelledBy(zh["signin.token"]), token)
	b.Submit("sign in", `//button[normalize-space()="`+zh["signin.submit"]+`"]`)
	b.WaitText("h1", zh["title.overview"])

	pages := []struct{ path, title string }{
		{"/", zh["title.overview"]},
		{"/login", zh["title.login"]},
		{"/conversations", zh["title.conversations"]},
		{"/dead-letters", zh["title.dead_letters"]},
		{"/rules?account=shop&text=hi", zh["title.rules"]},
		{"/events", zh["title.events"]},
		{"/nowhere", zh["title.error"]},
	}
	for _, p := range pages {
		b.Open(p.path)
		b.WaitText("h1", p.title)
		if strings.Contains(Eval(b, "document.body.innerHTML"), hostile) {
			t.Errorf("%s shows the hostile text unescaped", p.path)
		}
		if b.Accessibility(p.path) == 0 {
			t.Logf("%s: accessible; Tab reaches %d elements", p.path, len(b.Focusables()))
		}
	}
}

// lateSubscriber is the fake whose one login goes online while the page's
// event stream is subscribing: after the page was rendered, before any
// event could reach it.
type lateSubscriber struct {
	*fake
	online      atomic.Bool
	subscribing chan struct{} // receives when Subscribe is called
	release     chan struct{} // closed to let Subscribe go on
}

func (l *lateSubscriber) Logins(context.Context) []Login {
	if l.online.Load() {
		return []Login{{Name: "shop", Kind: "wkteam", State: "online", Online: true}}
	}
	return []Login{{Name: "shop", Kind: "wkteam", State: "logged_out"}}
}

func (l *lateSubscriber) Subscribe(ctx context.Context) <-chan Event {
	select {
	case l.subscribing <- struct{}{}:
	case <-ctx.Done():
	}
	select {
	case <-l.release:
	case <-ctx.Done():
	}
	return l.fake.Subscribe(ctx)
}

// TestLivePartCatchesUpWhenTheStreamOpens changes a login between the
// page's rendering and its stream's subscription, whose event the page
// can never receive: the page fetches its live part again once the stream
// is open, and shows the change.
func TestLivePartCatchesUpWhenTheStreamOpens(t *testing.T) {
	browsertest.Require(t)
	l := &lateSubscriber{fake: newFake(), subscribing: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(New(l, Options{Loopback: true}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(l.release) })
	b := browsertest.Start(t, srv.URL, "zh-CN")

	b.Open("/login")
	b.WaitText(".state", "未登录")
	select {
	case <-l.subscribing:
	case <-time.After(browsertest.WaitTimeout):
		t.Fatal("the login page opened no event stream")
	}
	l.online.Store(true)
	l.release <- struct{}{}
	b.WaitText(".state", messages[langZH]["login.online"])
}

// Eval is browsertest.Eval of a string.
func Eval(b *browsertest.Browser, expr string) string { return browsertest.Eval[string](b, expr) }
