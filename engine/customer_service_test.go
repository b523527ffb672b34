package engine

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestCustomerServiceExample runs examples/customer-service as its README
// does — its rules, the llm plugin with its file and knowledge, takeover on
// — against the simulator and a model that answers with the first line of
// the knowledge it is given: a FAQ from the rules, an open question from
// the model, 价格表 with an image, then silence after the owner answers
// from the phone.
func TestCustomerServiceExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	t.Parallel()
	pluginDir := buildPlugin(t, t.TempDir(), "llm", "../examples/plugins/llm")
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		answer := "请稍候"
		if _, kb, ok := strings.Cut(req.Messages[0].Content, "# 知识库"); ok {
			for _, line := range strings.Split(kb, "\n")[1:] {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					answer = line
					break
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "created": 1, "model": "fake",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": answer}}},
			"usage":   map[string]int{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
	}))
	t.Cleanup(model.Close)
	example := "../examples/customer-service"
	cfgText, err := os.ReadFile(filepath.Join(example, "bin", "llm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pluginDir, "llm.yaml"), strings.Replace(string(cfgText), "http://127.0.0.1:8787/v1", model.URL+"/v1", 1))
	faq, err := os.ReadFile(filepath.Join(example, "bin", "faq.md"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pluginDir, "faq.md"), string(faq))

	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	h.cfg.Rules = []string{filepath.Join(example, "rules")}
	h.cfg.Plugins.Dir = pluginDir
	// Inside opening hours, whatever the time the test runs.
	h.opts.Now = func() time.Time { return time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC) } // 10:00 in Shanghai
	h.start()
	_, wcID := h.online("shop")
	say := func(text string) {
		if _, err := h.sim.Inject(wcID, sim.Text("", text)); err != nil {
			t.Fatal(err)
		}
	}
	// Each question after the answer to the one before, as people ask: a
	// plugin's answer takes its place at the end of its conversation's
	// queue, so a later question the rules answer could overtake it.
	say("请问什么时候发货？")
	h.sent(1)
	say("紫砂壶怎么清洗？")
	h.sent(2)
	say("有价格表吗")
	s := h.sent(4)
	want := []string{
		"/privateSend 下单后 48 小时内发货，默认顺丰，江浙沪一般次日达。",
		"/privateSend 紫砂壶只用清水冲洗，不要用洗洁精；玻璃和瓷器茶具可以用温和的洗洁精。",
		"/privateSendImg https://static.example.com/shop/price-list.png",
		"/privateSend 这是最新价格表，需要哪款可以直接问我～",
	}
	for i, w := range want {
		if got := s[i].Endpoint + " " + s[i].Content + s[i].ImgURL; got != w {
			t.Errorf("send %d = %s, want %s", i, got, w)
		}
	}
	if _, err := h.sim.Inject(wcID, sim.OwnText("", "您好，我是店主，这单我来跟进")); err != nil {
		t.Fatal(err)
	}
	say("好的，那茶叶怎么保存？")
	// The owner hears of it; the customer gets nothing more.
	s = h.sent(5)
	if got := s[4].Endpoint + " " + s[4].WcID + " " + s[4].Content; got != "/sendText wxid_shop_owner 人工会话中客户又说：好的，那茶叶怎么保存？" {
		t.Fatalf("after the owner answered, sent %s", got)
	}
	if p := h.d.Paused("shop"); len(p) != 1 {
		t.Fatalf("paused %+v", p)
	}
}
