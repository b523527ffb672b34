package console

import (
	"io/fs"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// rendered is a page as sent and as parsed.
type rendered struct {
	body string
	doc  *html.Node
}

// renderedPages are every page the console renders, in both languages, with
// the fake's hostile texts in them, by path and language.
func renderedPages(t *testing.T) map[string]rendered {
	pages := map[string]string{}
	for _, l := range []string{"zh", "en"} {
		b, _ := openConsole(t, nil)
		for _, tc := range pageRoutes {
			if tc.status != 303 {
				pages[tc.path+" "+l] = b.get(tc.path, "Accept-Language", l).Body.String()
			}
		}
		b.post("/rules/reload", nil)
		pages["flash "+l] = b.get("/rules", "Accept-Language", l).Body.String()
		tb, _ := tokenConsole(t, Options{})
		pages["signin "+l] = tb.get("/signin", "Accept-Language", l).Body.String()
		tb.post("/signin", url.Values{"token": {"wrong"}})
		pages["wrong token "+l] = tb.post("/signin", url.Values{"token": {"wrong"}}, "Accept-Language", l).Body.String()
		tb.signIn(token)
		pages["signed in "+l] = tb.get("/", "Accept-Language", l).Body.String()
	}
	parsed := make(map[string]rendered, len(pages))
	for name, body := range pages {
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		parsed[name] = rendered{body, doc}
	}
	return parsed
}

func isFragmentPage(name string) bool { return strings.HasPrefix(name, "/fragments/") }

// walk calls fn for every element below n.
func walk(n *html.Node, fn func(*html.Node)) {
	if n.Type == html.ElementNode {
		fn(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.TrimSpace(b.String())
}

// TestNoInlineCode: the policy forbids inline scripts, styles and event
// handlers, so any would be a page that breaks; none may be rendered.
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	for name, page := range renderedPages(t) {
		walk(page.doc, func(n *html.Node) {
			if n.DataAtom == atom.Script {
				if src, ok := attr(n, "src"); !ok || !strings.HasPrefix(src, "/static/") || text(n) != "" {
					t.Errorf("%s: inline script %q", name, text(n))
				}
			}
			if n.DataAtom == atom.Style {
				t.Errorf("%s: a <style> element", name)
			}
			for _, a := range n.Attr {
				if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: <%s %s=%q>", name, n.Data, a.Key, a.Val)
				}
				if strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
					t.Errorf("%s: <%s %s=%q>", name, n.Data, a.Key, a.Val)
				}
			}
		})
	}
}

// TestHostileTextsEscaped: the fake puts a script into every text; it must
// come out as text.
func TestHostileTextsEscaped(t *testing.T) {
	t.Parallel()
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	for name, page := range renderedPages(t) {
		if strings.Contains(page.body, hostile) {
			t.Errorf("%s: the hostile text is rendered raw", name)
		}
	}
	b, _ := openConsole(t, nil)
	for path, min := range map[string]int{"/": 3, "/login": 1, "/conversations": 1, "/dead-letters": 2, "/rules?account=shop&text=x": 1, "/events": 1} {
		if got := strings.Count(b.get(path).Body.String(), escaped); got < min {
			t.Errorf("%s shows the hostile text escaped %d times, want %d", path, got, min)
		}
	}
	// A javascript: slider link is neutralised, not linked.
	if body := b.get("/login/evil").Body.String(); strings.Contains(body, "javascript:") || !strings.Contains(body, "#ZgotmplZ") {
		t.Errorf("javascript: slider URL:\n%s", body)
	}
}

// TestAccessibility checks the basics on every page: a language, a title,
// one h1, a label for every control, text on every button.
func TestAccessibility(t *testing.T) {
	t.Parallel()
	for name, page := range renderedPages(t) {
		doc := page.doc
		labels := map[string]bool{}
		ids := map[string]int{}
		h1, titles := 0, 0
		walk(doc, func(n *html.Node) {
			if n.DataAtom == atom.Label {
				if f, ok := attr(n, "for"); ok && text(n) != "" {
					labels[f] = true
				}
			}
			if id, ok := attr(n, "id"); ok {
				ids[id]++
			}
			switch n.DataAtom {
			case atom.H1:
				h1++
			case atom.Title:
				if text(n) != "" {
					titles++
				}
			case atom.Html:
				if l, _ := attr(n, "lang"); l == "" && !isFragmentPage(name) {
					t.Errorf("%s: <html> without lang", name)
				}
			case atom.Button:
				if text(n) == "" {
					t.Errorf("%s: a button without text", name)
				}
			case atom.Img:
				if alt, _ := attr(n, "alt"); alt == "" {
					t.Errorf("%s: an image without alt", name)
				}
			}
		})
		walk(doc, func(n *html.Node) {
			if n.DataAtom != atom.Input && n.DataAtom != atom.Select && n.DataAtom != atom.Textarea {
				return
			}
			if typ, _ := attr(n, "type"); typ == "hidden" {
				return
			}
			id, _ := attr(n, "id")
			if aria, _ := attr(n, "aria-label"); aria == "" && (id == "" || !labels[id]) {
				t.Errorf("%s: <%s name=%v> has no label", name, n.Data, n.Attr)
			}
		})
		for id, n := range ids {
			if n > 1 {
				t.Errorf("%s: id %q used %d times", name, id, n)
			}
		}
		if isFragmentPage(name) {
			if h1 != 0 {
				t.Errorf("%s: a fragment with an h1", name)
			}
			continue
		}
		if h1 != 1 || titles != 1 {
			t.Errorf("%s: %d h1, %d titles", name, h1, titles)
		}
	}
}

// TestContrast reads the colour pairs of the style sheet and holds each to
// WCAG AA (4.5:1) for normal text.
func TestContrast(t *testing.T) {
	t.Parallel()
	css, err := fs.ReadFile(staticFS, "console.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	pairs := [][2]string{
		{"fg", "bg"}, {"fg", "card"}, {"fg", "out"}, {"muted", "bg"}, {"muted", "card"}, {"muted", "out"},
		{"link", "bg"}, {"link", "card"}, {"ok", "card"}, {"bad", "card"}, {"warn", "card"}, {"warn", "out"},
		{"button-fg", "button"}, {"button-fg", "bad"},
	}
	for _, p := range pairs {
		a, b := vars[p[0]], vars[p[1]]
		if a == "" || b == "" {
			t.Errorf("--%s or --%s is not a #rrggbb colour in console.css", p[0], p[1])
			continue
		}
		if r := contrast(a, b); r < 4.5 {
			t.Errorf("--%s on --%s: contrast %.2f, want at least 4.5", p[0], p[1], r)
		}
	}
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.03928 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l
}
