package engine

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// slowModel is an OpenAI-compatible API that answers once release is
// closed, and counts the requests waiting on it.
func slowModel(t *testing.T, release <-chan struct{}, waiting *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		waiting.Add(1)
		defer waiting.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","created":1,"model":"slow","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"慢慢的回答"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const loadRules = `rules:
  - name: faq
    priority: 10
    stop: true
    when: msg.Text startsWith "echo " && !msg.FromSelf
    actions:
      - reply: "{{ msg.Text }}"
  - name: ask-the-model
    when: account == "llm" && msg.Text startsWith "ask " && !msg.FromSelf
    actions:
      - plugin: llm.answer
`

// TestSlowModelDelaysNoOtherConversation: 100 conversations of one account
// wait on a model that answers only once the measurement is over, each plugin call under way at once
// (plugins.calls_per_account); meanwhile the rule replies of three other
// accounts, and of the busy account's other conversations, go out as fast
// as without the load. Their p99 is logged beside a run without the
// plugin's load.
func TestSlowModelDelaysNoOtherConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin and waits on a slow model")
	}
	t.Parallel()
	pluginDir := buildPlugin(t, t.TempDir(), "llm", "../examples/plugins/llm")
	var waiting atomic.Int64
	// The model holds every call until the measurement is over: a call
	// that ended during it would leave a moment with less load, and on a
	// loaded machine the measurement would fall into it.
	release := make(chan struct{})
	model := slowModel(t, release, &waiting)
	writeFile(t, filepath.Join(pluginDir, "llm.yaml"), "provider: openai\nbase_url: "+model.URL+"/v1\nmodel: slow\ntimeout: 90s\n")

	measure := func(load bool) (others, busy []time.Duration) {
		h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true}, "llm", "shop1", "shop2", "shop3")
		writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), loadRules)
		h.cfg.Plugins.Dir = pluginDir
		h.cfg.Plugins.CallsPerAccount = 100
		h.cfg.Plugins.CallTimeout = 2 * time.Minute
		h.start()
		wcIDs := map[string]string{}
		for _, a := range []string{"llm", "shop1", "shop2", "shop3"} {
			_, wcIDs[a] = h.online(a)
		}
		if load {
			// Each conversation asks once: the model holds 100 calls
			// for the whole measurement.
			var msgs []sim.Message
			for i := range 100 {
				msgs = append(msgs, sim.Text(fmt.Sprintf("fv1_%04d@findermsgstranger", i), fmt.Sprintf("ask %d", i)))
			}
			if _, err := h.sim.Inject(wcIDs["llm"], msgs...); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for waiting.Load() < 100 { // observable: the model holds all 100 calls
				if time.Now().After(deadline) {
					t.Fatalf("only %d calls reached the model", waiting.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		least := int64(100)
		round := func(account, tag string) time.Duration {
			least = min(least, waiting.Load())
			start := time.Now()
			if _, err := h.sim.Inject(wcIDs[account], sim.Text("fv1_other@findermsgstranger", tag)); err != nil {
				t.Fatal(err)
			}
			for {
				sent := h.sent(len(h.sim.Sent()) + 1)
				if i := slices.IndexFunc(sent, func(s sim.Sent) bool { return s.Content == tag }); i >= 0 {
					return sent[i].Time.Sub(start)
				}
			}
		}
		for i := range 60 {
			others = append(others, round([]string{"shop1", "shop2", "shop3"}[i%3], fmt.Sprintf("echo %v %d", load, i)))
			if i%3 == 0 {
				busy = append(busy, round("llm", fmt.Sprintf("echo busy %v %d", load, i)))
			}
		}
		if load {
			close(release)
			if least < 90 {
				t.Fatalf("as few as %d calls waited on the model during the measurement: it measured too little load", least)
			}
			t.Logf("calls waiting on the model during the measurement: at least %d", least)
		}
		h.cancel()
		h.d.Close()
		return others, busy
	}
	baseOthers, baseBusy := measure(false)
	loadOthers, loadBusy := measure(true)
	p := func(ds []time.Duration, q float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(float64(len(s))*q))]
	}
	t.Logf("other accounts' rule replies: p50 %v, p99 %v without the load; p50 %v, p99 %v with 100 conversations waiting on the model",
		p(baseOthers, .5), p(baseOthers, .99), p(loadOthers, .5), p(loadOthers, .99))
	t.Logf("the busy account's other conversations: p50 %v, p99 %v without; p50 %v, p99 %v with",
		p(baseBusy, .5), p(baseBusy, .99), p(loadBusy, .5), p(loadBusy, .99))
	// Generous against a loaded machine, yet far below one model call:
	// nothing waited on the model.
	for name, d := range map[string]time.Duration{"other accounts": p(loadOthers, .99), "the busy account": p(loadBusy, .99)} {
		if d > time.Second {
			t.Errorf("%s: p99 %v under load", name, d)
		}
	}
}
