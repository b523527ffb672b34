package console

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMessageTablesHaveTheSameKeys(t *testing.T) {
	t.Parallel()
	zh, en := slices.Sorted(maps.Keys(messages[langZH])), slices.Sorted(maps.Keys(messages[langEN]))
	for _, k := range zh {
		if _, ok := messages[langEN][k]; !ok {
			t.Errorf("%q has no English text", k)
		}
	}
	for _, k := range en {
		if _, ok := messages[langZH][k]; !ok {
			t.Errorf("%q has no Chinese text", k)
		}
	}
	for _, k := range zh {
		if strings.Count(messages[langZH][k], "%") != strings.Count(messages[langEN][k], "%") {
			t.Errorf("%q: the languages take different arguments", k)
		}
	}
}

// TestEveryKeyUsedHasText finds the keys the templates and the Go code ask
// for, so that no page shows a bare key.
func TestEveryKeyUsedHasText(t *testing.T) {
	t.Parallel()
	uses := regexp.MustCompile(`\bT "([a-z_.]+)"|\.T\("([a-z_.]+)"|"(nav\.[a-z_]+)"`)
	found := 0
	scan := func(name string, b []byte) {
		for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
			key := m[1] + m[2] + m[3]
			found++
			if _, ok := messages[langZH][key]; !ok {
				t.Errorf("%s asks for %q, which has no text", name, key)
			}
		}
	}
	fs.WalkDir(assets, "assets/templates", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(assets, path)
			scan(path, b)
		}
		return nil
	})
	gofiles, _ := filepath.Glob("*.go")
	for _, name := range gofiles {
		if strings.HasSuffix(name, "_test.go") || name == "i18n.go" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		scan(name, b)
	}
	if found < 100 {
		t.Errorf("found only %d uses of keys: the scan is broken", found)
	}
}

func TestLanguage(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]string{
		"":                             `<html lang="zh-CN">`,
		"zh-CN,zh;q=0.9":               `<html lang="zh-CN">`,
		"zh-TW":                        `<html lang="zh-CN">`,
		"en-US,en;q=0.9":               `<html lang="en">`,
		"EN":                           `<html lang="en">`,
		"fr-FR, de":                    `<html lang="zh-CN">`,
		"fr-FR, en;q=0.5":              `<html lang="en">`,
		"zh;q=0.1, en;q=0.8":           `<html lang="en">`,
		"en;q=0, zh":                   `<html lang="zh-CN">`,
		"en;q=bogus, zh;q=0.5":         `<html lang="en">`,
		strings.Repeat("x-y;q=1,", 99): `<html lang="zh-CN">`,
	} {
		b, _ := openConsole(t, nil)
		if body := b.get("/", "Accept-Language", accept).Body.String(); !strings.Contains(body, want) {
			t.Errorf("Accept-Language %q: want %s", accept, want)
		}
	}
	b, _ := openConsole(t, nil)
	if body := b.get("/").Body.String(); !strings.Contains(body, "<h1>概览</h1>") || !strings.Contains(body, `href="/?lang=en"`) {
		t.Errorf("Chinese page:\n%s", body)
	}
}

func TestLanguageSwitch(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	w := b.get("/conversations?account=shop&lang=en", "Accept-Language", "zh-CN")
	body := w.Body.String()
	if !strings.Contains(body, "<h1>Conversations</h1>") || !strings.Contains(body, `href="/conversations?account=shop&amp;lang=zh"`) {
		t.Fatalf("after ?lang=en:\n%s", body)
	}
	if b.cookies[langCookie] != "en" {
		t.Fatalf("lang cookie %q", b.cookies[langCookie])
	}
	if body := b.get("/rules", "Accept-Language", "zh-CN").Body.String(); !strings.Contains(body, "<h1>Rules</h1>") {
		t.Error("the switch is not remembered")
	}
	b.get("/?lang=zh")
	if body := b.get("/rules", "Accept-Language", "en").Body.String(); !strings.Contains(body, "<h1>规则</h1>") {
		t.Error("switching back does not stick")
	}
	if b.get("/?lang=klingon"); b.cookies[langCookie] != "zh" {
		t.Errorf("an unknown language is stored: %q", b.cookies[langCookie])
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration][2]string{
		5 * time.Second:  {"5 秒前", "5 s ago"},
		-time.Minute:     {"0 秒前", "0 s ago"}, // a clock ahead of ours
		90 * time.Second: {"1 分钟前", "1 min ago"},
		3 * time.Hour:    {"3 小时前", "3 h ago"},
		50 * time.Hour:   {"2 天前", "2 d ago"},
	} {
		for i, l := range []lang{langZH, langEN} {
			v := &view{lang: l, now: now}
			if got := v.Ago(now.Add(-d)); got != want[i] {
				t.Errorf("%v ago in %s: %q, want %q", d, l, got, want[i])
			}
		}
	}
	if got := (&view{lang: langEN, now: now}).Ago(time.Time{}); got != "never" {
		t.Errorf("zero time: %q", got)
	}
}
