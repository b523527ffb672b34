package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// provider is an in-process model API that records every request and
// answers each with the next of its answers (the last one repeats).
type provider struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []recorded
	answers  []func(w http.ResponseWriter, r *http.Request)
}

// recorded is one request as the provider received it.
type recorded struct {
	Path, Auth string
	Body       map[string]any
}

func newProvider(t testing.TB, answers ...func(w http.ResponseWriter, r *http.Request)) *provider {
	p := &provider{answers: answers}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(data, &body)
		p.mu.Lock()
		n := len(p.requests)
		p.requests = append(p.requests, recorded{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body})
		answer := p.answers[min(n, len(p.answers)-1)]
		p.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) calls() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.requests...)
}

// chat answers a Chat Completions request with text and the token usage.
func chat(text string, in, out int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, text, in, out, in+out)
	}
}

// dify answers a chat-messages request with text in conversation conv.
func dify(text, conv string, in, out int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"event":"message","message_id":"m1","conversation_id":%q,"mode":"chat","answer":%q,"metadata":{"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"latency":0.5}}}`, conv, text, in, out, in+out)
	}
}

func status(code int, retryAfter string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"error":{"message":"busy","type":"rate_limit","code":"busy"}}`)
	}
}

func raw(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

// hang answers nothing until the caller gives up.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// faq is a knowledge file large enough to be cut into sections.
var faq = "# 常见问题\n\n本店销售手工茶具。\n\n## 发货\n\n下单后 48 小时内发货，默认顺丰快递。\n\n## 退换货\n\n签收 7 天内支持无理由退货，运费由买家承担。\n\n## 售后保修\n\n茶具一年内非人为损坏免费换新。\n\n## 发票\n\n可开具电子普通发票，下单时备注抬头。\n" +
	strings.Repeat("\n## 其他\n\n无关内容，关于品牌故事与工艺传承。\n", 20)

// rig is a plugin started through sdktest on a configuration written for
// the test.
type rig struct {
	t    *testing.T
	l    *llm
	p    *sdk.RemotePlugin
	host *sdktest.Host
	now  time.Time
	mu   sync.Mutex
}

// writeBenchConfig writes yaml (base_url filled in from p) and faq.md into
// a fresh directory and returns the configuration's path.
func writeBenchConfig(t testing.TB, p *provider, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "faq.md"), []byte(faq), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "llm.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "BASE", p.srv.URL+"/v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newBenchRig starts the plugin on yaml through sdktest.
func newBenchRig(t testing.TB, p *provider, yaml string) *sdk.RemotePlugin {
	t.Helper()
	l, err := newLLM(writeBenchConfig(t, p, yaml), p.srv.Client(), func(string) string { return "sk-test-123" })
	if err != nil {
		t.Fatal(err)
	}
	return sdktest.Start(t, l, sdktest.NewHost())
}

// newRig writes yaml and faq.md into a fresh directory and starts the
// plugin on them, with a clock of the test's.
func newRig(t *testing.T, p *provider, yaml string) *rig {
	t.Helper()
	path := writeBenchConfig(t, p, yaml)
	env := map[string]string{"LLM_KEY": "sk-test-123"}
	l, err := newLLM(path, p.srv.Client(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, l: l, host: sdktest.NewHost(), now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	l.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	r.p = sdktest.Start(t, l, r.host)
	return r
}

// advance moves the plugin's clock.
func (r *rig) advance(d time.Duration) { r.mu.Lock(); r.now = r.now.Add(d); r.mu.Unlock() }

// ask sends text as a message of the default stranger, with action id.
func (r *rig) ask(id, text string) *sdk.HandleResponse {
	r.t.Helper()
	resp, err := r.p.Handle(r.t.Context(), &sdk.HandleRequest{ID: id, Action: "answer", Account: "shop", Message: sdktest.Text(text)})
	if err != nil {
		r.t.Fatalf("answer %q: %v", text, err)
	}
	return resp
}

func texts(resp *sdk.HandleResponse) []string {
	var out []string
	for _, r := range resp.Replies {
		out = append(out, r.Text)
	}
	return out
}

func diagnostics(resp *sdk.HandleResponse) string {
	var b strings.Builder
	for _, d := range resp.Diagnostics {
		b.WriteString(d.Summary + "\n")
	}
	return b.String()
}

const openAIConfig = `provider: openai
base_url: BASE
model: deepseek-chat
api_key_env: LLM_KEY
system_prompt: 你是茶具店的客服，只根据知识库回答。
knowledge: faq.md
knowledge_whole_max: 200
knowledge_sections: 2
memory: {turns: 2, max_age: 24h}
timeout: 2s
retries: 1
fallback: 抱歉，请稍候，人工客服马上回复您。
`

// TestOpenAIRequestIsExact: the request carries the model, the key, the
// system prompt with the knowledge sections chosen for the question (and
// no other), and the conversation's memory; a diagnostic names the
// sections and the usage.
func TestOpenAIRequestIsExact(t *testing.T) {
	t.Parallel()
	p := newProvider(t, chat("48 小时内发货。", 120, 12), chat("七天内可以退。", 150, 10), chat("一年内免费换新。", 160, 9))
	r := newRig(t, p, openAIConfig)
	if got := texts(r.ask("1", "什么时候发货？")); len(got) != 1 || got[0] != "48 小时内发货。" {
		t.Fatalf("first answer %q", got)
	}
	resp := r.ask("2", "可以退货吗")
	if got := texts(resp); len(got) != 1 || got[0] != "七天内可以退。" {
		t.Fatalf("second answer %q", got)
	}
	if d := diagnostics(resp); !strings.Contains(d, "knowledge sections used: §常见问题 › 退换货") || !strings.Contains(d, "150 tokens in, 10 out") {
		t.Errorf("diagnostics:\n%s", d)
	}
	r.ask("3", "保修多久")
	r.ask("4", "发票呢")
	calls := p.calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls", len(calls))
	}
	c := calls[1]
	if c.Path != "/v1/chat/completions" || c.Auth != "Bearer sk-test-123" || c.Body["model"] != "deepseek-chat" {
		t.Errorf("request %s auth %q model %v", c.Path, c.Auth, c.Body["model"])
	}
	msgs := c.Body["messages"].([]any)
	role := func(msgs []any, i int) (string, string) {
		m := msgs[i].(map[string]any)
		return m["role"].(string), fmt.Sprint(m["content"])
	}
	if len(msgs) != 4 {
		t.Fatalf("messages %v", msgs)
	}
	if r0, sys := role(msgs, 0); r0 != "system" || !strings.HasPrefix(sys, "你是茶具店的客服") || !strings.Contains(sys, "签收 7 天内支持无理由退货") ||
		strings.Contains(sys, "顺丰") || strings.Contains(sys, "品牌故事") {
		t.Errorf("system prompt:\n%s", sys)
	}
	for i, want := range []string{"user:什么时候发货？", "assistant:48 小时内发货。", "user:可以退货吗"} {
		if r, c := role(msgs, i+1); r+":"+c != want {
			t.Errorf("message %d = %s:%s, want %s", i+1, r, c, want)
		}
	}
	// Two turns remembered: the fourth question sees the second and the
	// third, not the first.
	fourth := calls[3].Body["messages"].([]any)
	if len(fourth) != 6 {
		t.Fatalf("the fourth call has %d messages, want system, two turns and the question", len(fourth))
	}
	if _, q := role(fourth, 1); q != "可以退货吗" {
		t.Errorf("the fourth call's oldest remembered question is %q, want the second", q)
	}
}

// TestDifyRequestIsExact: Dify gets the question, blocking mode, the user,
// the key, and the conversation_id it gave on the first answer from the
// second on.
func TestDifyRequestIsExact(t *testing.T) {
	t.Parallel()
	p := newProvider(t, dify("您好，48 小时内发货。", "conv-42", 30, 8))
	r := newRig(t, p, "provider: dify\nbase_url: BASE\napi_key_env: LLM_KEY\nfallback: 稍候\n")
	if got := texts(r.ask("1", "什么时候发货")); len(got) != 1 || got[0] != "您好，48 小时内发货。" {
		t.Fatalf("answer %q", got)
	}
	r.ask("2", "顺丰吗")
	calls := p.calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	for i, want := range []string{"", "conv-42"} {
		c := calls[i]
		if c.Path != "/v1/chat-messages" || c.Auth != "Bearer sk-test-123" || c.Body["response_mode"] != "blocking" ||
			c.Body["conversation_id"] != want || !strings.HasPrefix(fmt.Sprint(c.Body["user"]), "finderbot:shop:") {
			t.Errorf("call %d: %s %q %v", i, c.Path, c.Auth, c.Body)
		}
	}
	if calls[1].Body["query"] != "顺丰吗" {
		t.Errorf("query %v", calls[1].Body["query"])
	}
}

// TestFailuresFallBack: every way the model can fail ends in the fallback
// reply and a diagnostic saying why, within the timeout; a rate limit is
// waited out only when its Retry-After fits in the timeout.
func TestFailuresFallBack(t *testing.T) {
	t.Parallel()
	ok := chat("好的", 10, 2)
	tests := map[string]struct {
		provider string
		answers  []func(http.ResponseWriter, *http.Request)
		calls    int
		want     string // the reply
		diag     string
	}{
		"timeout":                   {"openai", []func(http.ResponseWriter, *http.Request){hang}, 1, "抱歉", "no answer within 300ms"},
		"429 past the timeout":      {"openai", []func(http.ResponseWriter, *http.Request){status(429, "30")}, 1, "抱歉", "wait 30s, past the 300ms timeout"},
		"429 then an answer":        {"openai", []func(http.ResponseWriter, *http.Request){status(429, "0"), ok}, 2, "好的", "answered"},
		"5xx twice":                 {"openai", []func(http.ResponseWriter, *http.Request){status(502, "")}, 2, "抱歉", "HTTP 502"},
		"400 is not retried":        {"openai", []func(http.ResponseWriter, *http.Request){status(400, "")}, 1, "抱歉", "HTTP 400"},
		"malformed JSON":            {"openai", []func(http.ResponseWriter, *http.Request){raw(`{"choices":[{"message":`)}, 1, "抱歉", "failed"},
		"no choices":                {"openai", []func(http.ResponseWriter, *http.Request){raw(`{"id":"x","choices":[]}`)}, 1, "抱歉", "malformed answer: no choices"},
		"empty content":             {"openai", []func(http.ResponseWriter, *http.Request){chat("", 1, 0)}, 1, "抱歉", "an empty answer"},
		"dify timeout":              {"dify", []func(http.ResponseWriter, *http.Request){hang}, 1, "抱歉", "no answer within 300ms"},
		"dify 429 then an answer":   {"dify", []func(http.ResponseWriter, *http.Request){status(429, "0"), dify("好的", "c", 1, 1)}, 2, "好的", "answered"},
		"dify 429 past the timeout": {"dify", []func(http.ResponseWriter, *http.Request){status(429, "30")}, 1, "抱歉", "past the 300ms timeout"},
		"dify 5xx":                  {"dify", []func(http.ResponseWriter, *http.Request){status(500, "")}, 2, "抱歉", "HTTP 500"},
		"dify malformed":            {"dify", []func(http.ResponseWriter, *http.Request){raw(`<html>`)}, 1, "抱歉", "malformed answer"},
		"dify answer missing":       {"dify", []func(http.ResponseWriter, *http.Request){raw(`{"conversation_id":"c"}`)}, 1, "抱歉", "malformed answer: no answer"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newProvider(t, tc.answers...)
			r := newRig(t, p, "provider: "+tc.provider+"\nbase_url: BASE\nmodel: m\ntimeout: 300ms\nretries: 1\nfallback: 抱歉，请稍候。\n")
			start := time.Now()
			resp := r.ask("1", "在吗")
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %s, past the timeout", took)
			}
			if got := texts(resp); len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
				t.Errorf("replies %q, want %q", got, tc.want)
			}
			if d := diagnostics(resp); !strings.Contains(d, tc.diag) {
				t.Errorf("diagnostics:\n%s\nwant %q", d, tc.diag)
			}
			if n := len(p.calls()); n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
		})
	}
}

// TestDailyBudget: once an account's tokens of the day reach the budget,
// questions get the fallback without a call; another account, and the next
// day, are not held back.
func TestDailyBudget(t *testing.T) {
	t.Parallel()
	p := newProvider(t, chat("好的", 60, 20))
	r := newRig(t, p, "provider: openai\nbase_url: BASE\nmodel: m\ndaily_tokens: 100\nfallback: 今日咨询已满，请明天再来。\n")
	r.ask("1", "一")
	r.ask("2", "二") // 80 used before it: still under the budget
	resp := r.ask("3", "三")
	if got := texts(resp); len(got) != 1 || got[0] != "今日咨询已满，请明天再来。" || !strings.Contains(diagnostics(resp), "spent its daily budget (160 of 100 tokens") {
		t.Fatalf("replies %q, diagnostics %s", got, diagnostics(resp))
	}
	if n := len(p.calls()); n != 2 {
		t.Fatalf("%d calls, want 2: the third must not reach the model", n)
	}
	other, err := r.p.Handle(t.Context(), &sdk.HandleRequest{ID: "4", Action: "answer", Account: "mall", Message: sdktest.Text("四")})
	if err != nil || texts(other)[0] != "好的" {
		t.Fatalf("another account: %v %v", texts(other), err)
	}
	r.advance(24 * time.Hour)
	if got := texts(r.ask("5", "五")); got[0] != "好的" {
		t.Fatalf("next day: %q", got)
	}
	usage, err := r.p.Handle(t.Context(), &sdk.HandleRequest{ID: "6", Action: "usage", Account: "shop"})
	if err != nil || !strings.Contains(texts(usage)[0], "回答 1 次") {
		t.Fatalf("usage %v %v", texts(usage), err)
	}
}

// TestMemoryAcrossCallsAndItsAge: the conversation's turns come back on the
// next call, a retried action gets its recorded answer without a second
// call, and turns older than memory.max_age are forgotten.
func TestMemoryAcrossCallsAndItsAge(t *testing.T) {
	t.Parallel()
	p := newProvider(t, chat("A1", 1, 1), chat("A2", 1, 1), chat("A3", 1, 1))
	r := newRig(t, p, "provider: openai\nbase_url: BASE\nmodel: m\nmemory: {turns: 5, max_age: 1h}\n")
	r.ask("1", "Q1")
	if got := texts(r.ask("1", "Q1")); got[0] != "A1" || len(p.calls()) != 1 {
		t.Fatalf("a retried action: %q after %d calls", got, len(p.calls()))
	}
	r.advance(30 * time.Minute)
	r.ask("2", "Q2")
	r.advance(45 * time.Minute) // Q1 is now 75 minutes old, Q2 45
	r.ask("3", "Q3")
	calls := p.calls()
	count := func(c recorded) int { return len(c.Body["messages"].([]any)) }
	if count(calls[1]) != 3 || count(calls[2]) != 3 {
		t.Fatalf("messages per call: %d, %d; want the one remembered turn each time (Q1 forgotten by the third)", count(calls[1]), count(calls[2]))
	}
	if got := fmt.Sprint(calls[2].Body["messages"].([]any)[0].(map[string]any)["content"]); got != "Q2" {
		t.Fatalf("the third call remembers %q, want Q2", got)
	}
	v, _, _ := r.host.Get(t.Context(), memoryKey("shop", sdktest.Text("").Session))
	if !strings.Contains(string(v), `"A3"`) || strings.Contains(string(v), `"A1"`) {
		t.Fatalf("stored memory: %s", v)
	}
}

// TestLongAnswersAreCutForWeChat: an answer past max_answer_runes goes out
// in at most max_replies messages, none longer, cut at sentence ends.
func TestLongAnswersAreCutForWeChat(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("这是一句很长的话，用来测试分段。", 10)
	p := newProvider(t, chat(long, 1, 1))
	r := newRig(t, p, "provider: openai\nbase_url: BASE\nmodel: m\nmax_answer_runes: 40\nmax_replies: 2\n")
	got := texts(r.ask("1", "长"))
	if len(got) != 2 {
		t.Fatalf("%d replies: %q", len(got), got)
	}
	for _, s := range got {
		if n := len([]rune(s)); n > 40 {
			t.Errorf("%d runes: %q", n, s)
		}
	}
	if !strings.HasSuffix(got[0], "。") || !strings.HasSuffix(got[1], "…") {
		t.Errorf("cut at %q", got)
	}
}

// TestConfigReloadsOnChange: a new model in the file is used for the next
// answer; a broken file is reported by Health and the last good one keeps
// answering.
func TestConfigReloadsOnChange(t *testing.T) {
	t.Parallel()
	p := newProvider(t, chat("ok", 1, 1))
	r := newRig(t, p, "provider: openai\nbase_url: BASE\nmodel: first\n")
	reloaded := make(chan struct{}, 16)
	r.l.mu.Lock()
	r.l.onReload = func() { reloaded <- struct{}{} }
	r.l.mu.Unlock()
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(r.l.path+".tmp", []byte(strings.ReplaceAll(text, "BASE", p.srv.URL+"/v1")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(r.l.path+".tmp", r.l.path); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case <-reloaded:
			case <-deadline:
				t.Fatal("no reload within 10s")
			}
			r.l.mu.RLock()
			done := (r.l.cur.cfg.Model == "second") || r.l.loadErr != nil
			r.l.mu.RUnlock()
			if done {
				return
			}
		}
	}
	write("provider: openai\nbase_url: BASE\nmodel: second\n")
	r.ask("1", "hi")
	if m := p.calls()[0].Body["model"]; m != "second" {
		t.Fatalf("model %v after the reload", m)
	}
	write("provider: openai\nbase_url: BASE\nmodel: second\nretries: 99\n")
	if err := r.l.Health(t.Context()); err == nil || !strings.Contains(err.Error(), "llm.yaml:4: retries: want 0 to 5, got 99") {
		t.Fatalf("health = %v", err)
	}
	r.ask("2", "hi")
	if len(p.calls()) != 2 {
		t.Fatal("the last good configuration stopped answering")
	}
}

// TestSweepForgetsSilentConversations: the memory of a conversation silent
// past memory.max_age, and usage older than a week, leave the store; a
// live conversation's stay.
func TestSweepForgetsSilentConversations(t *testing.T) {
	t.Parallel()
	p := newProvider(t, chat("好的", 1, 1))
	r := newRig(t, p, "provider: openai\nbase_url: BASE\nmodel: m\nmemory: {turns: 3, max_age: 1h}\n")
	swept := make(chan struct{}, 4)
	r.l.sweepMu.Lock()
	r.l.onSweep = func() { swept <- struct{}{} }
	r.l.sweepMu.Unlock()
	ask := func(id, session string) {
		m := sdktest.Text("在吗")
		m.Session = session
		if _, err := r.p.Handle(t.Context(), &sdk.HandleRequest{ID: id, Action: "answer", Account: "shop", Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	ask("1", "old@findermsg")
	<-swept // the first answer sweeps an empty store
	r.advance(8 * 24 * time.Hour)
	ask("2", "new@findermsg")
	<-swept
	keys, _ := r.host.Keys(t.Context(), "")
	want := []string{memoryKey("shop", "new@findermsg"), usageKey("shop", "2026-12-09")}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("keys after the sweep: %q, want %q", keys, want)
	}
}
