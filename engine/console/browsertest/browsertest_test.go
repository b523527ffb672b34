package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// pages serves each page at its path.
func pages(t *testing.T, pages map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

const style = `<style>:focus-visible { outline: 3px solid #1a56db; } .bare:focus-visible { outline: none; }</style>`

// TestAccessibilityFindsProblems shows each check failing on a page made to
// fail it, naming the element, and passing on a page that is right.
func TestAccessibilityFindsProblems(t *testing.T) {
	Require(t)
	srv := pages(t, map[string]string{
		"/good": `<!doctype html><html lang="en"><head>` + style + `</head><body>
<a href="/x">link</a>
<label for="a">Name</label><input id="a" name="a">
<label>Wrapped <select name="s"><option>1</option></select></label>
<textarea aria-label="Text" name="t"></textarea>
<input type="hidden" name="h" value="1">
<details><summary>More</summary><a href="/hidden">hidden until open</a></details>
<button type="submit">Go</button>
<p style="color:#767676">4.54:1 grey on white</p>
<h1 style="color:#949494;font-size:24px">3.03:1 large</h1>
</body></html>`,
		"/bad": `<!doctype html><html><head>` + style + `</head><body>
<input id="unlabelled" name="q">
<label for="elsewhere">Orphan</label>
<p id="faint" style="color:#999">2.85:1 grey on white</p>
<div style="background:#000"><span id="dark" style="color:#333">dark on black</span></div>
<div style="background:rgba(0,0,0,.5)"><span id="half" style="color:#555">on half black over white</span></div>
<a href="/1" class="bare">no indicator</a>
<button tabindex="3">first by tabindex</button>
<button></button>
<img src="data:," >
</body></html>`,
	})
	b := Start(t, srv.URL, "en")

	b.Open("/good")
	if p := b.AccessibilityProblems(); len(p) > 0 {
		t.Errorf("a page without problems has these:\n%s", strings.Join(p, "\n"))
	}

	b.Open("/bad")
	got := b.AccessibilityProblems()
	want := []string{
		`label: no label[for], wrapping label or aria-label for input#unlabelled[name="q"]`,
		`name: no text or aria-label for button`,
		`alt: no alt attribute on img`,
		`lang: the html element has no lang`,
		`tabindex: a positive tabindex changes the Tab order: button "first by tabindex"`,
		`contrast 2.85:1, want at least 4.5:1 for normal text: p#faint "2.85:1 grey on white" (rgb(153, 153, 153) on rgb(255, 255, 255))`,
		`contrast 1.66:1, want at least 4.5:1 for normal text: span#dark "dark on black" (rgb(51, 51, 51) on rgb(0, 0, 0))`,
		`contrast 1.87:1, want at least 4.5:1 for normal text: span#half "on half black over white" (rgb(85, 85, 85) on rgb(128, 128, 128))`,
		`focus: a.bare[href="/1"] "no indicator" shows no focus indicator (outline and box-shadow are none)`,
		`keyboard: Tab 3 of 4 reached button (element 4 in document order), want button "first by tabindex"`,
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("the problems of /bad lack\n\t%s\nthey are:\n\t%s", w, strings.Join(got, "\n\t"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("/bad has %d problems, want %d:\n\t%s", len(got), len(want), strings.Join(got, "\n\t"))
	}

	// Without the tabindex, Tab goes in document order: the walk ends
	// with no problem of order.
	b.Do("drop the tabindex", chromedp.Evaluate[chromedp.Void](`document.querySelector("[tabindex]").removeAttribute("tabindex")`))
	for _, p := range b.AccessibilityProblems() {
		if strings.HasPrefix(p, "keyboard:") || strings.HasPrefix(p, "tabindex:") {
			t.Errorf("without the tabindex: %s", p)
		}
	}
}

// ending records how a test was ended.
type ending struct {
	testing.TB
	skipped, failed string
}

func (e *ending) Helper()                           {}
func (e *ending) Skip(args ...any)                  { e.skipped = fmt.Sprint(args...) }
func (e *ending) Fatalf(format string, args ...any) { e.failed = fmt.Sprintf(format, args...) }

// TestRequireWithoutBrowser skips, or fails when CI is set, when no browser
// is in PATH, saying how to install one.
func TestRequireWithoutBrowser(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	const advice = "no chromium/chrome found in PATH; install it (apt-get install chromium) to run the console's browser test"
	for name, ci := range map[string]string{"local": "", "CI": "1"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("CI", ci)
			e := &ending{TB: t}
			if path := Require(e); path != "" {
				t.Fatalf("Require with an empty PATH found %s", path)
			}
			got, other := e.skipped, e.failed
			if ci != "" {
				got, other = e.failed, e.skipped
			}
			if !strings.HasPrefix(got, advice) || other != "" {
				t.Errorf("with CI=%q: skipped %q, failed %q; want the advice %q as the %s", ci, e.skipped, e.failed, advice,
					map[bool]string{true: "failure", false: "skip"}[ci != ""])
			}
		})
	}
}
