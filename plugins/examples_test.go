package plugins_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
	buildOut  []byte
)

// buildExamples builds the example plugins once per test binary run (TestMain
// removes the build) and returns a directory of copies the caller owns.
func buildExamples(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "finderbot-example-plugins-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", builtDir+string(filepath.Separator), "../examples/plugins/...")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./examples/plugins/...: %v\n%s", buildErr, buildOut)
	}
	dir := t.TempDir()
	for _, name := range []string{"counter", "keyword", "webhook"} {
		data, err := os.ReadFile(filepath.Join(builtDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExamplePlugins(t *testing.T) {
	dir := buildExamples(t)
	if err := os.WriteFile(filepath.Join(dir, "keywords.yaml"), []byte("- match: [价格]\n  reply: 价格请看置顶视频。\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := plugins.RunLock(&out, io.Discard, dir, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrote 3 pin(s)") {
		t.Errorf("lock output:\n%s", out.String())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "webhook saw the message")
	}))
	defer srv.Close()

	host := newMemHost()
	m, _ := startManager(t, plugins.Config{Dir: dir}, host)
	for name, tc := range map[string]struct {
		plugin, action string
		params         map[string]string
		text, want     string
	}{
		"keyword": {plugin: "keyword", action: "reply", text: "价格多少", want: "价格请看置顶视频。"},
		"webhook": {plugin: "webhook", action: "post", params: map[string]string{"url": srv.URL}, text: "x", want: "webhook saw the message"},
		"counter": {plugin: "counter", action: "count", params: map[string]string{"reply": "#{n}"}, text: "x", want: "#1"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := m.Call(context.Background(), tc.plugin, tc.action, &sdk.HandleRequest{
				Params: tc.params, Message: sdktest.Text(tc.text), Account: "acc",
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Replies) != 1 || resp.Replies[0].Text != tc.want {
				t.Errorf("replies = %+v, want %q", resp.Replies, tc.want)
			}
		})
	}
	// The counter's state lives in the host: a second call sees the first.
	resp, err := m.Call(context.Background(), "counter", "count", &sdk.HandleRequest{Message: sdktest.Text("x"), Account: "acc"})
	if err != nil || len(resp.Replies) != 1 || resp.Replies[0].Text != "这是您第 2 条消息。" {
		t.Errorf("second count: %+v, %v", resp, err)
	}
	if v, ok, _ := host.Get(context.Background(), "counter", "count/acc/"+sdktest.Text("").From); !ok || string(v) != "2" {
		t.Errorf("counter's stored count = %q, %v; want 2", v, ok)
	}

	out.Reset()
	if err := plugins.RunList(context.Background(), &out, io.Discard, plugins.Config{Dir: dir}, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"counter  1.0.0    ready  true", "keyword.reply", "url (required)", `reply (default "这是您第 {n} 条消息。")`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ls output lacks %q:\n%s", want, out.String())
		}
	}
}
