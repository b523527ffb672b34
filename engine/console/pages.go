package console

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds of what the pages ask for and accept.
const (
	conversationsShown = 50
	deadLettersShown   = 200
	eventsShown        = 100
	maxCodeLen         = 32
	maxTryText         = 4096
)

func (c *console) routes() {
	c.mux.HandleFunc("GET /static/{file}", serveStatic)
	c.handle("/", page, func(w http.ResponseWriter, _ *http.Request, v *view) {
		c.fail(w, v, http.StatusNotFound, v.T("err.not_found"))
	})
	c.handle("GET /{$}", page, c.overview)
	c.handle("GET /fragments/overview", data, c.overview)
	c.handle("GET /login", page, c.logins)
	c.handle("GET /login/{name}", page, c.logins)
	c.handle("GET /fragments/login", data, c.logins)
	c.handle("GET /fragments/login/{name}", data, c.logins)
	c.handle("GET /login/{name}/qr.png", data, c.qr)
	c.handle("POST /login/{name}/start", page, c.startLogin)
	c.handle("POST /login/{name}/code", page, c.submitCode)
	c.handle("GET /conversations", page, c.conversations)
	c.handle("POST /conversations/resume", page, c.resume)
	c.handle("GET /dead-letters", page, c.deadLetters)
	c.handle("POST /dead-letters/{id}/retry", page, c.deadLetter)
	c.handle("POST /dead-letters/{id}/drop", page, c.deadLetter)
	c.handle("POST /dead-letters/retry-kind", page, c.retryKind)
	c.handle("GET /rules", page, c.rules)
	c.handle("POST /rules/reload", page, c.reload)
	c.handle("GET /events", page, c.events)
	c.handle("GET /events/stream", data, c.stream)
	c.handle("GET /signin", public, c.signInPage)
	c.handle("POST /signin", public, c.signIn)
	c.handle("POST /signout", public, c.signOut)
}

// isFragment says the request wants only the live part of its page.
func isFragment(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/fragments/") }

// show renders a page whole, or its live part when asked for a fragment.
func (c *console) show(w http.ResponseWriter, r *http.Request, v *view, status int, name string) {
	fragment := ""
	if isFragment(r) {
		fragment = name + "-live"
	}
	c.render(w, status, name, fragment, v)
}

// errorStatus is the status of a Backend error.
func errorStatus(err error) int {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// maxOverviewRows bounds the accounts the Overview lists: a daemon may hold
// ten thousand, and a page of them all would be slow to serve and useless
// to read. The ones that need a person come first; the filter finds others.
const maxOverviewRows = 100

// overviewView is the Overview as the page shows it: a count of the
// accounts in each state, and the first of them, those that need a person
// first.
type overviewView struct {
	Overview
	Rows   []overviewRow // the accounts listed
	Query  string
	States []stateCount
	All    int // accounts of the daemon
	Total  int // of those, the ones matching the query
	Hidden int // of those, the ones not listed
}

// overviewRow is a listed account with its figures formatted here, not in
// the template: a template's function calls go through reflection, and the
// Overview is served again at every change a browser hears of.
// Its fields are its own, not an embedded Account's: the template finds
// an embedded field by a search that allocates at every use.
type overviewRow struct {
	Name, State, Detail, WcID    string
	SyncAgo, SyncISO, SyncClock  string
	In, Out                      string
	Outbox, InDoubt, DeadLetters int
}

type stateCount struct {
	State string
	N     int
}

// listing is what the Overview lists, before its figures are formatted
// for a request: the accounts counted by state, and the first of them
// that match the query, in the page's order.
type listing struct {
	Overview // Accounts holds the listed ones alone
	States   []stateCount
	All      int
	Total    int
	Hidden   int
}

// list picks the Overview's listing out of ov, for query q ("" for all).
func list(ov Overview, q string) *listing {
	l := &listing{Overview: ov, All: len(ov.Accounts)}
	counts := map[string]int{}
	// The first maxOverviewRows in the page's order are picked in one pass
	// without sorting the rest: ten thousand accounts cost as many
	// comparisons with the worst one kept so far, most of them failing.
	top := make(rankedHeap, 0, maxOverviewRows)
	for i := range ov.Accounts {
		a := &ov.Accounts[i]
		counts[a.State]++
		if q != "" && !strings.Contains(a.Name, q) && !strings.Contains(a.WcID, q) {
			continue
		}
		l.Total++
		top.offer(ranked{a, attention(*a)}, maxOverviewRows)
	}
	for st, n := range counts {
		l.States = append(l.States, stateCount{st, n})
	}
	slices.SortFunc(l.States, func(a, b stateCount) int { return cmp.Compare(a.State, b.State) })
	slices.SortFunc(top, func(a, b ranked) int { return b.order(a) })
	l.Hidden = l.Total - len(top)
	// A copy of the listed accounts alone: the listing may be kept, and
	// must not keep ten thousand.
	l.Accounts = make([]Account, len(top))
	for i, m := range top {
		l.Accounts[i] = *m.a
	}
	return l
}

// overviewMaxAge is how old the unfiltered listing a request is served may
// be, when no event came since it was made: the page's figures move by the
// second, and a daemon of ten thousand accounts should not read them all at
// every request of every browser.
const overviewMaxAge = time.Second

// listings keeps the unfiltered listing of the Overview. A request is
// served the kept one when no event came since it was made; once it is
// older than overviewMaxAge, the request starts making the next in the
// background and is served the kept one meanwhile. After an event — which
// is also what makes an open page ask again — the listing is made anew
// before the request is answered.
type listings struct {
	mu         sync.Mutex
	kept       *listing
	seq        uint64 // of the latest event when kept was made
	at         time.Time
	refreshing bool
}

// latestSeq is the sequence number of the backend's latest event, 0 for
// none.
func latestSeq(ctx context.Context, b Backend) uint64 {
	var seq uint64
	for _, e := range b.RecentEvents(ctx, 1) { // in any order
		seq = max(seq, e.Seq)
	}
	return seq
}

// get returns the unfiltered listing, made or kept as the type says.
func (ls *listings) get(ctx context.Context, b Backend, now time.Time) *listing {
	seq := latestSeq(ctx, b)
	ls.mu.Lock()
	if kept := ls.kept; kept != nil && ls.seq == seq {
		if now.Sub(ls.at) > overviewMaxAge && !ls.refreshing {
			ls.refreshing = true
			go func() {
				// Not the request's context: the request is answered
				// before this ends.
				// Stamped with the request's time, which it is no older
				// than, on the clock of every other stamp.
				ls.store(list(b.Overview(context.WithoutCancel(ctx)), ""), seq, now, true)
			}()
		}
		ls.mu.Unlock()
		return kept
	}
	ls.mu.Unlock()
	l := list(b.Overview(ctx), "")
	ls.store(l, seq, now, false)
	return l
}

// store keeps l, made at now for events up to seq, unless a newer one is
// kept already.
func (ls *listings) store(l *listing, seq uint64, now time.Time, refreshed bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if refreshed {
		ls.refreshing = false
	}
	if ls.kept != nil && (ls.seq > seq || (ls.seq == seq && ls.at.After(now))) {
		return
	}
	ls.kept, ls.seq, ls.at = l, seq, now
}

func (c *console) overview(w http.ResponseWriter, r *http.Request, v *view) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	var l *listing
	if q == "" {
		l = c.listings.get(r.Context(), c.b, v.now)
	} else {
		l = list(c.b.Overview(r.Context()), q)
	}
	d := overviewView{Overview: l.Overview, Query: q, States: l.States, All: l.All, Total: l.Total, Hidden: l.Hidden}
	d.Rows = make([]overviewRow, len(l.Accounts))
	for i := range l.Accounts {
		a := &l.Accounts[i]
		row := overviewRow{Name: a.Name, State: a.State, Detail: a.Detail, WcID: a.WcID, SyncAgo: v.Ago(a.LastSync),
			In: strconv.FormatFloat(a.InPerMin, 'f', 1, 64), Out: strconv.FormatFloat(a.OutPerMin, 'f', 1, 64),
			Outbox: a.Outbox, InDoubt: a.InDoubt, DeadLetters: a.DeadLetters}
		if !a.LastSync.IsZero() {
			row.SyncISO, row.SyncClock = a.LastSync.Format(time.RFC3339), clock(a.LastSync)
		}
		d.Rows[i] = row
	}
	d.Accounts = nil // the rows are what the page lists
	v.Title, v.Data = v.T("title.overview"), d
	v.Fragment = "/fragments/overview"
	if q != "" {
		v.Fragment += "?q=" + url.QueryEscape(q)
	}
	if q != "" || !isFragment(r) {
		c.show(w, r, v, http.StatusOK, "overview")
		return
	}
	// The live fragment of the unfiltered listing, which every browser on
	// the Overview fetches at every change it hears of.
	page := c.overviewHTML.get(l, v.lang, d.Rows)
	if page == nil {
		var ok bool
		if page, ok = c.execute(w, "overview", "overview-live", v); !ok {
			return
		}
		c.overviewHTML.put(l, v.lang, d.Rows, page)
	}
	writeHTML(w, http.StatusOK, page)
}

// renderedOverview is the live fragment of the unfiltered Overview as it
// was last rendered. The fragment is made of the listing, the language
// and the rows formatted for the request, which differ from one request to
// the next only in their times ago: until the listing is made anew, the
// requests of the same second are served the same bytes without running
// the template again (a browser on the Overview fetches the fragment at
// every change it hears of, and there may be several).
type renderedOverview struct {
	mu   sync.Mutex
	l    *listing
	lang lang
	rows []overviewRow
	page []byte // never modified once kept
}

// get returns the fragment rendered of l, in lang, with rows; nil when it
// is not the one kept.
func (ro *renderedOverview) get(l *listing, lang lang, rows []overviewRow) []byte {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.l != l || ro.lang != lang || !slices.Equal(ro.rows, rows) {
		return nil
	}
	return ro.page
}

// put keeps page, the fragment rendered of l, in lang, with rows.
func (ro *renderedOverview) put(l *listing, lang lang, rows []overviewRow, page []byte) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.l, ro.lang, ro.rows, ro.page = l, lang, rows, page
}

// ranked is an account with its attention rank, computed once.
type ranked struct {
	a    *Account
	rank int
}

// order compares r with o in the Overview's order: it is positive when r
// comes first (more attention, then the name).
func (r ranked) order(o ranked) int {
	return cmp.Or(cmp.Compare(r.rank, o.rank), cmp.Compare(o.a.Name, r.a.Name))
}

// rankedHeap keeps the first n accounts offered, in the Overview's order,
// as a heap whose root is the last of them.
type rankedHeap []ranked

// offer keeps r when it is among the first n so far.
func (h *rankedHeap) offer(r ranked, n int) {
	s := *h
	if len(s) < n {
		s = append(s, r)
		// Up: a parent comes later in the page than its children.
		for i := len(s) - 1; i > 0; {
			p := (i - 1) / 2
			if s[p].order(s[i]) <= 0 {
				break
			}
			s[p], s[i] = s[i], s[p]
			i = p
		}
		*h = s
		return
	}
	if n == 0 || r.order(s[0]) <= 0 {
		return // not before the last one kept
	}
	s[0] = r
	for i := 0; ; {
		l, last := 2*i+1, i
		if l < len(s) && s[l].order(s[last]) < 0 {
			last = l
		}
		if r := l + 1; r < len(s) && s[r].order(s[last]) < 0 {
			last = r
		}
		if last == i {
			return
		}
		s[i], s[last] = s[last], s[i]
		i = last
	}
}

// attention ranks how much an account needs a person: offline first, then
// dead letters, replies in doubt and a full outbox.
func attention(a Account) int {
	n := min(a.DeadLetters, 1000)*1000 + min(a.InDoubt, 999) + min(a.Outbox, 999)
	if a.State != "online" {
		n += 1 << 30
	}
	return n
}

func (c *console) logins(w http.ResponseWriter, r *http.Request, v *view) {
	logins := c.b.Logins(r.Context())
	v.Title, v.Fragment = v.T("title.login"), "/fragments/login"
	if name := r.PathValue("name"); name != "" {
		logins = slices.DeleteFunc(logins, func(l Login) bool { return l.Name != name })
		if len(logins) == 0 {
			c.fail(w, v, http.StatusNotFound, v.T("err.not_found"))
			return
		}
		v.Title += ": " + name
		v.Fragment += "/" + url.PathEscape(name)
	}
	v.Data = logins
	c.show(w, r, v, http.StatusOK, "login")
}

// pngSignature starts every PNG file.
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

func (c *console) qr(w http.ResponseWriter, r *http.Request, _ *view) {
	png, err := c.b.LoginQR(r.Context(), r.PathValue("name"))
	if err == nil && !bytes.HasPrefix(png, pngSignature) {
		err = errors.New("console: the login's QR code is not a PNG image")
	}
	if err != nil {
		http.Error(w, err.Error(), errorStatus(err))
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}

func loginPage(name string) string { return "/login/" + url.PathEscape(name) }

func (c *console) startLogin(w http.ResponseWriter, r *http.Request, v *view) {
	name := r.PathValue("name")
	outcome(w, r, loginPage(name), c.b.StartLogin(r.Context(), name), v.T("flash.login_started"))
}

func (c *console) submitCode(w http.ResponseWriter, r *http.Request, v *view) {
	name := r.PathValue("name")
	code := strings.TrimSpace(r.PostFormValue("code"))
	if code == "" || utf8.RuneCountInString(code) > maxCodeLen {
		back(w, r, loginPage(name), false, v.T("err.code_empty"))
		return
	}
	outcome(w, r, loginPage(name), c.b.SubmitCode(r.Context(), name, code), v.T("flash.code_sent"))
}

// accountNames are the names of the accounts, for the pages that pick one.
func (c *console) accountNames(r *http.Request) []string { return c.b.AccountNames(r.Context()) }

func (c *console) conversations(w http.ResponseWriter, r *http.Request, v *view) {
	d := struct {
		Accounts      []string
		Account       string
		Conversations []Conversation
	}{Accounts: c.accountNames(r), Account: r.URL.Query().Get("account")}
	if d.Account == "" && len(d.Accounts) > 0 {
		d.Account = d.Accounts[0]
	}
	v.Title, v.Data = v.T("title.conversations"), &d
	status := http.StatusOK
	if d.Account != "" {
		convs, err := c.b.Conversations(r.Context(), d.Account, conversationsShown)
		if err != nil {
			status, v.Flash = errorStatus(err), &flash{Text: err.Error()}
		}
		slices.SortStableFunc(convs, func(a, b Conversation) int { return b.Last.Compare(a.Last) })
		for _, conv := range convs {
			slices.SortStableFunc(conv.Messages, func(a, b Message) int { return b.Time.Compare(a.Time) })
		}
		d.Conversations = convs
	}
	c.render(w, status, "conversations", "", v)
}

// resume hands a paused conversation back to the bot.
func (c *console) resume(w http.ResponseWriter, r *http.Request, v *view) {
	account, conv := r.PostFormValue("account"), r.PostFormValue("conv")
	to := "/conversations?" + url.Values{"account": {account}}.Encode()
	outcome(w, r, to, c.b.Resume(r.Context(), account, conv), v.T("flash.resumed", conv))
}

func (c *console) deadLetters(w http.ResponseWriter, r *http.Request, v *view) {
	letters, err := c.b.DeadLetters(r.Context(), deadLettersShown)
	status := http.StatusOK
	if err != nil {
		status, v.Flash = errorStatus(err), &flash{Text: err.Error()}
	}
	var kinds []string
	for _, l := range letters {
		kinds = append(kinds, l.Kind)
	}
	slices.Sort(kinds)
	v.Title = v.T("title.dead_letters")
	v.Data = struct {
		Letters []DeadLetter
		Kinds   []string
	}{letters, slices.Compact(kinds)}
	c.render(w, status, "deadletters", "", v)
}

// deadLetter retries or drops one dead letter, by the last path segment.
func (c *console) deadLetter(w http.ResponseWriter, r *http.Request, v *view) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		back(w, r, "/dead-letters", false, v.T("err.bad_id"))
		return
	}
	if strings.HasSuffix(r.URL.Path, "/drop") {
		outcome(w, r, "/dead-letters", c.b.DropDeadLetter(r.Context(), id), v.T("flash.dropped"))
		return
	}
	outcome(w, r, "/dead-letters", c.b.RetryDeadLetter(r.Context(), id), v.T("flash.retried"))
}

func (c *console) retryKind(w http.ResponseWriter, r *http.Request, v *view) {
	kind := strings.TrimSpace(r.PostFormValue("kind"))
	if kind == "" {
		back(w, r, "/dead-letters", false, v.T("err.kind_empty"))
		return
	}
	n, err := c.b.RetryDeadLetters(r.Context(), kind)
	outcome(w, r, "/dead-letters", err, v.T("flash.retried_n", n))
}

func (c *console) rules(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := struct {
		Rules         []Rule
		Accounts      []string
		Account, Text string
		Trial         *Trial
	}{Rules: c.b.Rules(r.Context()), Accounts: c.accountNames(r), Account: q.Get("account"), Text: q.Get("text")}
	v.Title, v.Data = v.T("title.rules"), &d
	status := http.StatusOK
	if q.Has("text") {
		trial, err := c.tryMessage(r, d.Account, d.Text)
		if err != nil {
			status, v.Flash = http.StatusBadRequest, &flash{Text: err.Error()}
		} else {
			d.Trial = &trial
		}
	}
	c.render(w, status, "rules", "", v)
}

func (c *console) tryMessage(r *http.Request, account, text string) (Trial, error) {
	if len(text) > maxTryText {
		return Trial{}, errors.New("console: the text to try is longer than 4096 bytes")
	}
	return c.b.TryMessage(r.Context(), account, text)
}

func (c *console) reload(w http.ResponseWriter, r *http.Request, v *view) {
	outcome(w, r, "/rules", c.b.Reload(r.Context()), v.T("flash.reloaded"))
}

func (c *console) events(w http.ResponseWriter, r *http.Request, v *view) {
	events := c.b.RecentEvents(r.Context(), eventsShown)
	slices.SortFunc(events, func(a, b Event) int { return cmp.Compare(b.Seq, a.Seq) })
	v.Title, v.Append, v.Data = v.T("title.events"), true, events
	c.render(w, http.StatusOK, "events", "", v)
}

func (c *console) signInPage(w http.ResponseWriter, r *http.Request, v *view) {
	next := safeNext(r.URL.Query().Get("next"))
	if c.opts.Token == "" || v.SignedIn {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	v.Title, v.Data = v.T("title.signin"), next
	c.render(w, http.StatusOK, "signin", "", v)
}

func (c *console) signIn(w http.ResponseWriter, r *http.Request, v *view) {
	next := safeNext(r.PostFormValue("next"))
	if c.opts.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	v.Title, v.Data = v.T("title.signin"), next
	if c.failures.blocked(r, v.now) {
		v.Flash = &flash{Text: v.T("signin.limited")}
		c.render(w, http.StatusTooManyRequests, "signin", "", v)
		return
	}
	if !c.opts.TokenMatches(c.opts.Token, r.PostFormValue("token")) {
		c.failures.failed(r, v.now)
		v.Flash = &flash{Text: v.T("signin.wrong")}
		c.render(w, http.StatusUnauthorized, "signin", "", v)
		return
	}
	id, _ := c.sessions.start(v.now)
	setCookie(w, r, sessionCookie, id, int(c.opts.SessionTTL/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) signOut(w http.ResponseWriter, r *http.Request, _ *view) {
	if id := cookie(r, sessionCookie); id != "" {
		c.sessions.end(id)
		setCookie(w, r, sessionCookie, "", -1)
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
