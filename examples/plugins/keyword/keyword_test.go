package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

const table = `
- match: [价格, 多少钱, Price]
  reply: 价格请看置顶视频。
- match: [地址]
  reply: 我们在上海。
`

// writeFile replaces path atomically, the way deploy tools do.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReply(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keywords.yaml")
	writeFile(t, path, table)
	k, err := newKeyword(path)
	if err != nil {
		t.Fatal(err)
	}
	p := sdktest.Start(t, k, nil)

	for name, tc := range map[string]struct {
		text     string
		fallback string
		want     []sdk.Reply
	}{
		"first keyword":        {text: "请问价格", want: []sdk.Reply{{Text: "价格请看置顶视频。"}}},
		"another keyword":      {text: "多少钱呀", want: []sdk.Reply{{Text: "价格请看置顶视频。"}}},
		"case is ignored":      {text: "what PRICE?", want: []sdk.Reply{{Text: "价格请看置顶视频。"}}},
		"second entry":         {text: "地址在哪", want: []sdk.Reply{{Text: "我们在上海。"}}},
		"no match":             {text: "你好"},
		"no match, fallback":   {text: "你好", fallback: "稍后回复您", want: []sdk.Reply{{Text: "稍后回复您"}}},
		"not a text, fallback": {fallback: "稍后回复您", want: []sdk.Reply{{Text: "稍后回复您"}}},
	} {
		t.Run(name, func(t *testing.T) {
			msg := sdktest.Text(tc.text)
			if tc.text == "" {
				msg.Type, msg.RawType, msg.Text, msg.Content = sdk.TypeImage, sdk.RawImage, "", "<msg><img/></msg>"
			}
			params := map[string]string{}
			if tc.fallback != "" {
				params["fallback"] = tc.fallback
			}
			resp, err := p.Handle(t.Context(), &sdk.HandleRequest{Action: "reply", Params: params, Message: msg})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Replies) != len(tc.want) || (len(tc.want) == 1 && resp.Replies[0] != tc.want[0]) {
				t.Errorf("replies = %+v, want %+v", resp.Replies, tc.want)
			}
		})
	}
}

func TestReloadOnChange(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keywords.yaml")
	writeFile(t, path, table)
	reloaded := make(chan struct{}, 16)
	k, err := newKeyword(path)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.onReload = func() {
		select {
		case reloaded <- struct{}{}:
		default:
		}
	}
	k.mu.Unlock()
	p := sdktest.Start(t, k, nil)
	ctx := t.Context()
	reply := func() string {
		resp, err := p.Handle(ctx, &sdk.HandleRequest{Action: "reply", Message: sdktest.Text("营业时间")})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Replies) == 0 {
			return ""
		}
		return resp.Replies[0].Text
	}
	// waitReload waits for reloads until cond holds.
	waitReload := func(what string, cond func() bool) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for !cond() {
			select {
			case <-reloaded:
			case <-timeout:
				t.Fatalf("no reload brought %s", what)
			}
		}
	}
	if got := reply(); got != "" {
		t.Fatalf("before the change: %q", got)
	}

	writeFile(t, path, table+"- match: [营业时间]\n  reply: 每天 9 点到 18 点。\n")
	waitReload("the new entry", func() bool { return reply() == "每天 9 点到 18 点。" })

	// A broken table is reported, and the last good one keeps answering.
	writeFile(t, path, "- match: [x]\n  reply: \"\"\n")
	waitReload("a health problem", func() bool { return p.Health(ctx) != nil })
	if err := p.Health(ctx); !strings.Contains(err.Error(), "keywords.yaml:1: entry has no reply") {
		t.Errorf("health = %v, want the file and line of the problem", err)
	}
	if got := reply(); got != "每天 9 点到 18 点。" {
		t.Errorf("after a bad edit: %q, want the last good table's answer", got)
	}
}

func TestLoadTableErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ content, want string }{
		"unknown field": {"- match: [a]\n  reply: b\n  replay: c\n", "field replay not found"},
		"no match":      {"- reply: b\n", ":1: entry has no match keywords"},
		"empty keyword": {"- match: [a]\n  reply: b\n- match: [\"\"]\n  reply: c\n", ":3: an empty keyword"},
		"not a list":    {"match: a\n", "cannot unmarshal"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.yaml")
			writeFile(t, path, tc.content)
			_, err := loadTable(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := loadTable(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing table loaded")
	}
}
