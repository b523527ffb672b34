// Package browsertest drives the console in a real browser for tests: a
// headless Chromium (or Chrome) found in PATH, one tab per test, waits on the
// page's DOM, full-page screenshots kept as test artifacts, and accessibility
// checks run in the page (labels, text contrast, the Tab order and a visible
// focus indicator).
//
// Without a browser, Start skips the test saying how to install one; with the
// environment variable CI set it fails instead, so that CI cannot pass by
// skipping. Screenshots go to t.ArtifactDir() (kept with go test -artifacts
// -outputdir DIR) and, when FINDERBOT_SCREENSHOTS names a directory, are
// copied there as well.
package browsertest

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Browsers are the executables looked for in PATH, in this order.
var Browsers = []string{"chromium", "chromium-browser", "google-chrome"}

// WindowWidth and WindowHeight are the size of the browser window; the
// width is also the screenshots'.
const (
	WindowWidth  = 1280
	WindowHeight = 900
)

// ScreenshotsEnv names the environment variable that, set to a directory,
// receives a copy of every screenshot (not of those taken on failure).
const ScreenshotsEnv = "FINDERBOT_SCREENSHOTS"

// WaitTimeout bounds each wait on the page.
const WaitTimeout = 20 * time.Second

// noBrowser is what a test says when there is no browser to run.
const noBrowser = "no chromium/chrome found in PATH; install it (apt-get install chromium) to run the console's browser test"

//go:embed a11y.js
var a11yJS string

// Find returns the path of the first of Browsers in PATH.
func Find() (string, error) {
	for _, name := range Browsers {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("browsertest: %s", noBrowser)
}

// Require returns the browser's path, or ends the test: a skip, or with CI
// set a failure. Call it before starting anything costly.
func Require(t testing.TB) string {
	t.Helper()
	path, err := Find()
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so the browser test may not skip)", noBrowser)
		return ""
	}
	t.Skip(noBrowser)
	return ""
}

// Browser is one tab of a headless browser, for one test. Its methods end
// the test on failure, so call them from the test's goroutine.
type Browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot int // failure screenshots taken
}

// Start starts a headless browser in a temporary profile, its UI in lang
// (for example "zh-CN"; its Accept-Language too), with base as the origin
// that Open's paths are relative to. The browser ends with the test.
func Start(t *testing.T, base, lang string) *Browser {
	t.Helper()
	path := Require(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(WindowWidth, WindowHeight),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("lang", lang),
		chromedp.Flag("accept-lang", lang),
		chromedp.Flag("font-render-hinting", "none"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first run starts the browser, bound to ctx: no deadline here, each
	// action has its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	b := &Browser{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/")}
	// Accept-Language is what the console goes by; the flags above set it
	// only for some builds, so it is set for the tab as well.
	cctx, cancel := b.timeout()
	defer cancel()
	if _, err := chromedp.Call(cctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": lang},
	}); err != nil {
		t.Fatalf("set the browser's Accept-Language: %v", err)
	}
	return b
}

// Context is the tab, for chromedp actions of a test's own; give each a
// deadline.
func (b *Browser) Context() context.Context { return b.ctx }

// URL is base joined with path.
func (b *Browser) URL(path string) string { return b.base + path }

// timeout is a context for one action.
func (b *Browser) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, WaitTimeout)
}

// Do runs actions, ending the test with what and the page's state if one
// fails.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", what, err)
	}
}

// Open loads path and waits for its load event.
func (b *Browser) Open(path string) {
	b.t.Helper()
	b.Do("open "+path, chromedp.Navigate(b.URL(path)))
}

// Submit clicks the element sel (a button) and waits for the page it leads
// to; it returns the HTTP status of that page.
func (b *Browser) Submit(what, sel string) int64 {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel))
	if err != nil {
		b.fail("%s: click %s: %v", what, sel, err)
	}
	if resp == nil {
		b.fail("%s: clicking %s loaded no page", what, sel)
	}
	return resp.Status
}

// Type types text into the element sel.
func (b *Browser) Type(sel, text string) {
	b.t.Helper()
	b.Do("type into "+sel, chromedp.SendKeys(sel, text))
}

// Location is the address of the page.
func (b *Browser) Location() string {
	b.t.Helper()
	return Eval[string](b, "document.location.href")
}

// WaitFor waits until the JavaScript expression cond (or the promise it
// returns) is truthy in the page. The wait does not survive a navigation:
// wait for a page after Open or Submit has loaded it.
func (b *Browser) WaitFor(what, cond string) {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(WaitTimeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.fail("waiting for %s (%s): %v", what, cond, err)
	}
}

// WaitText waits until the element sel exists and its text holds want.
func (b *Browser) WaitText(sel, want string) {
	b.t.Helper()
	b.WaitFor(fmt.Sprintf("%q in %s", want, sel), fmt.Sprintf(
		"Array.from(document.querySelectorAll(%s)).some(function (e) { return e.innerText.includes(%s); })", js(sel), js(want)))
}

// WaitServed waits until the page at path, fetched by the open page, holds
// want: for what a page shows only when loaded again, such as a change that
// sent no event.
func (b *Browser) WaitServed(path, want string) {
	b.t.Helper()
	b.WaitFor(fmt.Sprintf("%s to show %q", path, want), fmt.Sprintf(
		`fetch(%s, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (t) { return t.includes(%s); })`,
		js(path), js(want)))
}

// Eval evaluates a JavaScript expression in the page and decodes its value.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate %s: %v", short(expr), err)
	}
	return v
}

// LabelledBy returns a selector of the form control whose label reads
// label, ending the test if there is none: a person finds a field by its
// label, and so does the test.
func (b *Browser) LabelledBy(label string) string {
	b.t.Helper()
	id := Eval[string](b, fmt.Sprintf(`(function () {
  var l = Array.from(document.querySelectorAll("label")).find(function (l) { return l.textContent.trim() === %s; });
  if (!l || !l.control) return "";
  if (!l.control.id) l.control.id = "browsertest-" + Math.random().toString(36).slice(2);
  return l.control.id;
})()`, js(label)))
	if id == "" {
		b.fail("no form control is labelled %q", label)
	}
	return "#" + id
}

// Screenshot saves a full-page PNG of the page as name.png in the test's
// artifact directory, and in $FINDERBOT_SCREENSHOTS when set; it returns
// the artifact's path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := b.timeout()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	path, err := b.save(name+".png", png, true)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
	return path
}

// save writes file into the test's artifact directory and, if shared, into
// $FINDERBOT_SCREENSHOTS too.
func (b *Browser) save(file string, data []byte, shared bool) (string, error) {
	path := filepath.Join(b.t.ArtifactDir(), file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("browsertest: save %s: %w", file, err)
	}
	if dir := os.Getenv(ScreenshotsEnv); dir != "" && shared {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("browsertest: %s: %w", ScreenshotsEnv, err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			return "", fmt.Errorf("browsertest: %s: %w", ScreenshotsEnv, err)
		}
	}
	return path, nil
}

// fail ends the test with the message, the page's address and text, and a
// screenshot of it.
func (b *Browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.location.href + "\n" + (document.body ? document.body.innerText : "(no body)")`))
	if err != nil {
		b.t.Fatalf("%s\n(the page could not be read: %v)", msg, err)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		b.shot++
		if path, err := b.save(fmt.Sprintf("failure-%d.png", b.shot), png, false); err == nil {
			msg += "\nscreenshot: " + path
		}
	}
	b.t.Fatalf("%s\npage %s", msg, indent(state))
}

// Accessibility checks the page: every form control has a label, text has
// a contrast of at least 4.5:1 (3:1 when large), links and buttons have
// names, images alt text, and Tab reaches every link, button and field in
// document order, each showing a focus indicator. Each problem is an error
// of the test naming page and element; it returns the number of problems.
func (b *Browser) Accessibility(page string) int {
	b.t.Helper()
	problems := b.AccessibilityProblems()
	for _, p := range problems {
		b.t.Errorf("accessibility of %s (%s): %s", page, b.Location(), p)
	}
	return len(problems)
}

// AccessibilityProblems are the problems Accessibility reports, one a
// sentence naming the element.
func (b *Browser) AccessibilityProblems() []string {
	b.t.Helper()
	problems := Eval[[]string](b, a11y("check"))
	return append(problems, b.tabOrder()...)
}

// Focusables describes what Tab should reach on the page, in order.
func (b *Browser) Focusables() []string {
	b.t.Helper()
	return Eval[[]string](b, a11y("focusables"))
}

// tabOrder presses Tab once for each element that should take the focus
// and checks that the focus lands on each in turn with an indicator. A walk
// spoilt by the live update replacing part of the page is walked again.
func (b *Browser) tabOrder() []string {
	b.t.Helper()
	var problems []string
	for try := 1; try <= 3; try++ {
		problems = b.walk()
		if problems == nil {
			return nil
		}
		type state struct{ Replaced bool }
		if !Eval[state](b, a11y("focused")).Replaced {
			return problems
		}
	}
	return append(problems, "the page's live part was replaced during each of 3 walks with Tab")
}

func (b *Browser) walk() []string {
	b.t.Helper()
	want := b.Focusables()
	Eval[bool](b, a11y("start"))
	type focus struct {
		Index     int
		Element   string
		Indicator string
		Replaced  bool
	}
	var problems []string
	for i, w := range want {
		b.Do("press Tab", chromedp.KeyEvent(kb.Tab))
		got := Eval[focus](b, a11y("focused"))
		if got.Index != i {
			where := ""
			if got.Index >= 0 {
				where = fmt.Sprintf(" (element %d in document order)", got.Index+1)
			}
			return append(problems, fmt.Sprintf("keyboard: Tab %d of %d reached %s%s, want %s", i+1, len(want), got.Element, where, w))
		}
		if got.Indicator == "" {
			problems = append(problems, fmt.Sprintf("focus: %s shows no focus indicator (outline and box-shadow are none)", got.Element))
		}
	}
	return problems
}

func a11y(mode string) string { return "(" + a11yJS + ")(" + js(mode) + ")" }

// js quotes s as a JavaScript string.
func js(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n\t") }
