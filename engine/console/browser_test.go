package console

import (
	"net/http/httptest"
	"strings"
	"testing"

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

// Eval is browsertest.Eval of a string.
func Eval(b *browsertest.Browser, expr string) string { return browsertest.Eval[string](b, expr) }
