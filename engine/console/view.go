package console

import (
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// view is what every template sees: the request's language and session,
// the page's title and its data.
type view struct {
	lang    lang
	now     time.Time
	path    string
	request *http.Request

	Title    string
	SignedIn bool
	ShowNav  bool
	CSRF     string
	Flash    *flash
	// Fragment is the URL the script re-fetches into #live on events;
	// Append says the script appends events to #event-rows instead.
	Fragment string
	Append   bool
	Data     any
}

// T is the UI text of key in the request's language.
func (v *view) T(key string, args ...any) string { return v.lang.text(key, args...) }

// State is a state's name in the request's language; a state the UI has
// no words for is shown as the daemon names it.
func (v *view) State(state string) string {
	if t, ok := messages[v.lang]["state."+state]; ok {
		return t
	}
	return state
}

// other is the language the switch offers.
func (v *view) other() lang {
	if v.lang == langEN {
		return langZH
	}
	return langEN
}

// LangURL is the link of the language switch.
func (v *view) LangURL() string { return switchURL(v.request, v.other()) }

// LangTag is the tag of the language the switch offers.
func (v *view) LangTag() string { return v.other().text("lang.tag") }

// Ago is t as a time relative to the request, "never" when zero.
func (v *view) Ago(t time.Time) string {
	if t.IsZero() {
		return v.T("time.never")
	}
	d := max(v.now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return v.T("ago.s", int(d/time.Second))
	case d < time.Hour:
		return v.T("ago.min", int(d/time.Minute))
	case d < 24*time.Hour:
		return v.T("ago.h", int(d/time.Hour))
	}
	return v.T("ago.d", int(d/(24*time.Hour)))
}

// navItem is one link of the navigation bar.
type navItem struct {
	Href, Text string
	Current    bool
}

// NavItems are the links of the navigation bar, the current page marked.
func (v *view) NavItems() []navItem {
	links := []struct{ href, key string }{
		{"/", "nav.overview"}, {"/login", "nav.login"}, {"/conversations", "nav.conversations"},
		{"/dead-letters", "nav.dead_letters"}, {"/rules", "nav.rules"}, {"/events", "nav.events"},
	}
	items := make([]navItem, len(links))
	for i, l := range links {
		current := v.path == l.href || (l.href != "/" && strings.HasPrefix(v.path, l.href+"/"))
		items[i] = navItem{Href: l.href, Text: v.T(l.key), Current: current}
	}
	return items
}

// clock is a time as the pages print it, "" when zero.
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05")
}

// funcs are the template helpers that do not depend on the request.
var funcs = template.FuncMap{
	"asset":   assetURL,
	"pathEsc": url.PathEscape,
	"clock":   clock,
	"iso":     func(t time.Time) string { return t.Format(time.RFC3339) },
	"unix":    func(t time.Time) int64 { return t.Unix() },
	"join":    func(s []string) string { return strings.Join(s, ", ") },
	"lines": func(s string) []string {
		return strings.Split(strings.TrimRight(s, "\n"), "\n")
	},
	"short": func(s string, n int) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		return string([]rune(s)[:n]) + "…"
	},
}

var (
	staticFS   = mustSub(assets, "assets/static")
	assetHash  = hashAssets(staticFS)
	pages      = parsePages()
	pageNames  = []string{"overview", "login", "conversations", "deadletters", "rules", "events", "signin", "error"}
	staticType = map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// hashAssets names each static file's content, so that its URL changes
// with it and browsers may cache it for good.
func hashAssets(f fs.FS) map[string]string {
	hashes := make(map[string]string)
	entries, _ := fs.ReadDir(f, ".")
	for _, e := range entries {
		b, _ := fs.ReadFile(f, e.Name())
		sum := sha256.Sum256(b)
		hashes[e.Name()] = hex.EncodeToString(sum[:6])
	}
	return hashes
}

func assetURL(name string) string { return "/static/" + name + "?v=" + assetHash[name] }

// parsePages parses each page with the layout into a set of its own, so
// that every page can define "content".
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/templates/layout.html"))
	m := make(map[string]*template.Template)
	for _, name := range pageNames {
		m[name] = template.Must(template.Must(base.Clone()).ParseFS(assets, "assets/templates/"+name+".html"))
	}
	return m
}

// serveStatic serves the script and the style sheet: for good when asked
// for the current version, else to be checked again.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(staticFS, name)
	if err != nil || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == assetHash[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Type", staticType[path.Ext(name)])
	w.Write(b)
}
