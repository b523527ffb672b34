package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// pageRoutes are the GET routes of the console and what each shows.
var pageRoutes = map[string]struct {
	path   string
	status int
	want   []string
}{
	"overview":              {"/", 200, []string{"<h1>概览</h1>", "wxid_shop", "1 分钟前", "2.5", "v1.2.0", `href="/conversations?account=shop"`, `data-fragment="/fragments/overview"`}},
	"overview fragment":     {"/fragments/overview", 200, []string{"wxid_shop", "keyword"}},
	"logins":                {"/login", 200, []string{`<img src="/login/shop/qr.png?v=`, "短信验证码", `action="/login/idle/start"`, "已在线", `href="https://slider.example/check?x=1"`}},
	"one login":             {"/login/crm", 200, []string{"<h1>登录: crm</h1>", `action="/login/crm/code"`, `data-fragment="/fragments/login/crm"`}},
	"login fragment":        {"/fragments/login/shop", 200, []string{"qr.png"}},
	"all logins fragment":   {"/fragments/login", 200, []string{"crm", "idle"}},
	"escaped name":          {"/login/a%2Fb", 200, []string{`action="/login/a%2Fb/start"`, `href="/login/a%2Fb?lang=en"`, `data-fragment="/fragments/login/a%2Fb"`}},
	"unknown login":         {"/login/nobody", 404, []string{"找不到"}},
	"conversations":         {"/conversations", 200, []string{"bob", "alice", "greet", "reply", `<option value="shop" selected>`}},
	"other account":         {"/conversations?account=idle", 404, []string{`<option value="idle" selected>`, "not found"}},
	"dead letters":          {"/dead-letters", 200, []string{`action="/dead-letters/7/retry"`, `action="/dead-letters/8/drop"`, "可能已发出", "2 次尝试", "timeout", `name="kind" value="send"`}},
	"rules":                 {"/rules", 200, []string{"rules/greet.yaml:3", "12", `action="/rules/reload"`, `<label for="try-text">`}},
	"try a message":         {"/rules?account=shop&text=%E5%93%88%E5%96%BD", 200, []string{"回答它的规则: <strong>greet</strong>", "msg.Text == 哈喽", "cooldown"}},
	"try fails":             {"/rules?account=ghost&text=fail", 400, []string{"rules: no account ghost"}},
	"events":                {"/events", 200, []string{`id="event-rows"`, "session.needs_scan", `data-append="events"`}},
	"unknown page":          {"/nowhere", 404, []string{"<h1>出错了</h1>"}},
	"sign-in without token": {"/signin", 303, nil},
}

func TestPages(t *testing.T) {
	t.Parallel()
	for name, tc := range pageRoutes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, f := openConsole(t, nil)
			w := b.get(tc.path)
			if w.Code != tc.status {
				t.Fatalf("GET %s: status %d, want %d\n%s", tc.path, w.Code, tc.status, w.Body)
			}
			for _, s := range tc.want {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("GET %s: no %q in\n%s", tc.path, s, w.Body)
				}
			}
			if calls := f.called(); len(calls) > 0 {
				t.Errorf("GET %s changed state: %v", tc.path, calls)
			}
		})
	}
}

func TestFragmentsAreNotPages(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	for _, path := range []string{"/fragments/overview", "/fragments/login/shop"} {
		if body := b.get(path).Body.String(); strings.Contains(body, "<html") || strings.Contains(body, "<h1") {
			t.Errorf("%s renders a whole page:\n%s", path, body)
		}
	}
}

func TestNewestFirst(t *testing.T) {
	t.Parallel()
	for path, pairs := range map[string][][2]string{
		"/conversations?account=shop": {{"bob", "alice"}, {"second", "first"}},
		"/events":                     {{"newer", "older"}},
	} {
		b, _ := openConsole(t, nil)
		body := b.get(path).Body.String()
		for _, p := range pairs {
			if strings.Index(body, p[0]) > strings.Index(body, p[1]) {
				t.Errorf("%s: %q comes before %q", path, p[1], p[0])
			}
		}
	}
}

func TestQRCode(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	w := b.get("/login/shop/qr.png")
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/png" || w.Body.String() != string(pngBytes) {
		t.Errorf("qr.png: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("a QR code logs someone in; Cache-Control is %q", cc)
	}
	if w := b.get("/login/crm/qr.png"); w.Code != 404 {
		t.Errorf("no QR code: %d", w.Code)
	}
	if w := b.get("/login/broken/qr.png"); w.Code != 500 || !strings.Contains(w.Body.String(), "not a PNG") {
		t.Errorf("not a PNG: %d %s", w.Code, w.Body)
	}
}

// TestActions posts every form and follows the redirect to the flash.
func TestActions(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		path     string
		form     url.Values
		back     string
		call     string // "" when nothing may be asked of the backend
		flash    string
		failWith error
	}{
		"start login":     {"/login/idle/start", nil, "/login/idle", "start idle", "已开始登录。", nil},
		"code":            {"/login/crm/code", url.Values{"code": {" 123456 "}}, "/login/crm", "code crm 123456", "验证码已提交。", nil},
		"empty code":      {"/login/crm/code", url.Values{"code": {"  "}}, "/login/crm", "", "请输入验证码。", nil},
		"code too long":   {"/login/crm/code", url.Values{"code": {strings.Repeat("1", 33)}}, "/login/crm", "", "请输入验证码。", nil},
		"name escaped":    {"/login/a%2Fb/start", nil, "/login/a%2Fb", "start a/b", "已开始登录。", nil},
		"retry":           {"/dead-letters/7/retry", nil, "/dead-letters", "retry 7", "死信已重新排队。", nil},
		"drop":            {"/dead-letters/8/drop", nil, "/dead-letters", "drop 8", "死信已丢弃。", nil},
		"bad id":          {"/dead-letters/x7/retry", nil, "/dead-letters", "", "编号无效。", nil},
		"id past uint64":  {"/dead-letters/18446744073709551616/drop", nil, "/dead-letters", "", "编号无效。", nil},
		"retry kind":      {"/dead-letters/retry-kind", url.Values{"kind": {"reply"}}, "/dead-letters", "retry-kind reply", "已重新排队 2 条死信。", nil},
		"retry no kind":   {"/dead-letters/retry-kind", nil, "/dead-letters", "", "请指定死信类型。", nil},
		"reload":          {"/rules/reload", nil, "/rules", "reload", "规则已重新加载。", nil},
		"reload fails":    {"/rules/reload", nil, "/rules", "reload", "<p>rules: greet.yaml:3:9: unknown name msgg</p><p>rules: late.yaml:1:1: &lt;bad&gt;</p>", errors.New("rules: greet.yaml:3:9: unknown name msgg\nrules: late.yaml:1:1: <bad>")},
		"backend refuses": {"/dead-letters/7/retry", nil, "/dead-letters", "retry 7", "dead letter 7 is gone", errors.New("dead letter 7 is gone")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.failWith = tc.failWith
			b, _ := openConsole(t, f)
			w := b.post(tc.path, tc.form)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tc.back {
				t.Fatalf("POST %s: %d to %q, want 303 to %q\n%s", tc.path, w.Code, w.Header().Get("Location"), tc.back, w.Body)
			}
			var want []string
			if tc.call != "" {
				want = []string{tc.call}
			}
			if got := f.called(); !slices.Equal(got, want) {
				t.Errorf("backend calls %q, want %q", got, want)
			}
			page := b.get(tc.back).Body.String()
			if !strings.Contains(page, tc.flash) {
				t.Errorf("no flash %q on %s:\n%s", tc.flash, tc.back, page)
			}
			if again := b.get(tc.back).Body.String(); strings.Contains(again, `class="flash`) {
				t.Error("the flash shows twice")
			}
		})
	}
}

// TestHeaders checks the security headers on every kind of response.
func TestHeaders(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	check := func(what string, w interface{ Header() http.Header }, cache string) {
		t.Helper()
		h := w.Header()
		for k, v := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           cache,
		} {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %s is %q, want %q", what, k, got, v)
			}
		}
	}
	if contentSecurityPolicy != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" {
		t.Errorf("the policy changed: %s", contentSecurityPolicy)
	}
	for name, tc := range pageRoutes {
		check(name, b.get(tc.path), "no-store")
	}
	check("qr", b.get("/login/shop/qr.png"), "no-store")
	check("post", b.post("/rules/reload", nil), "no-store")
	check("refused post", b.do(http.MethodPost, "/rules/reload", url.Values{}), "no-store")
	check("static", b.get(assetURL("console.css")), "public, max-age=31536000, immutable")
	check("old static", b.get("/static/console.css?v=old"), "no-cache")
	check("no such file", b.get("/static/nope.js"), "no-store")
	check("method not allowed", b.do(http.MethodPut, "/", nil), "no-store")
}

func TestFormBounded(t *testing.T) {
	t.Parallel()
	b, f := openConsole(t, nil)
	w := b.post("/login/crm/code", url.Values{"code": {strings.Repeat("1", maxFormBytes)}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "the form cannot be read") {
		t.Errorf("a form past the bound: %d\n%s", w.Code, w.Body)
	}
	if calls := f.called(); len(calls) > 0 {
		t.Errorf("backend asked %q", calls)
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	for file, ctype := range map[string]string{"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"} {
		w := b.get(assetURL(file))
		if w.Code != 200 || w.Header().Get("Content-Type") != ctype || w.Body.Len() == 0 {
			t.Errorf("%s: %d %q", file, w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, path := range []string{"/static/nope.js", "/static/..%2Fconsole.go", "/static/%2e%2e"} {
		if w := b.get(path); w.Code != 404 {
			t.Errorf("%s: %d", path, w.Code)
		}
	}
}

// manyAccounts is a daemon of thousands of accounts, a few of which need a
// person.
type manyAccounts struct{ *fake }

func (m manyAccounts) Overview(ctx context.Context) Overview {
	ov := m.fake.Overview(ctx)
	ov.Accounts = nil
	for i := range 5000 {
		ov.Accounts = append(ov.Accounts, Account{Name: fmt.Sprintf("shop-%04d", i), State: "online"})
	}
	ov.Accounts[4321].State = "needs_scan"
	ov.Accounts[17].DeadLetters = 3
	return ov
}

// TestOverviewOfManyAccounts lists at most maxOverviewRows accounts, those
// that need a person first, says how many it left out, and finds any other
// through the filter.
func TestOverviewOfManyAccounts(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, New(manyAccounts{newFake()}, Options{Loopback: true}))
	body := b.get("/").Body.String()
	if n := strings.Count(body, `href="/conversations?account=shop-`); n != maxOverviewRows {
		t.Errorf("%d accounts listed, want %d", n, maxOverviewRows)
	}
	first, second := strings.Index(body, "shop-4321"), strings.Index(body, "shop-0017")
	if first < 0 || second < 0 || first > second || second > strings.Index(body, "shop-0000") {
		t.Errorf("the account waiting for a scan, then the one with dead letters, must come first (at %d, %d)", first, second)
	}
	for _, want := range []string{"共 5000 个账号:", "等待扫码</span> 1", "在线</span> 4999", "还有 4900 个未列出", `<label for="q">`} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview does not say %q", want)
		}
	}
	found := b.get("/?q=shop-2468").Body.String()
	if !strings.Contains(found, `account=shop-2468"`) || strings.Contains(found, "shop-0017") || !strings.Contains(found, `data-fragment="/fragments/overview?q=shop-2468"`) {
		t.Errorf("the filter does not find shop-2468 alone, live:\n%s", found)
	}
}
