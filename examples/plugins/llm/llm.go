package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/finderbot/finderbot/sdk"
)

// llm answers messages with a language model. Its configuration, and the
// knowledge file it names, are reloaded when they change; one that fails
// to load is reported by Health while the last good one keeps answering.
type llm struct {
	path    string
	hc      *http.Client
	getenv  func(string) string // where the API key comes from
	now     func() time.Time
	watcher *fsnotify.Watcher
	done    chan struct{}

	mu       sync.RWMutex
	cur      *setup // nil until a configuration loaded
	loadErr  error
	onReload func() // called after every reload attempt; tests hook it

	usageMu sync.Mutex // one read-modify-write of an account's usage at a time

	sweepMu sync.Mutex
	swept   time.Time      // when the last sweep began
	onSweep func()         // called after every sweep; tests hook it
	sweeps  sync.WaitGroup // Close waits for a sweep under way
}

// setup is one loaded configuration with what it builds.
type setup struct {
	cfg   *Config
	know  *knowledge
	model model
}

var (
	_ sdk.Plugin        = (*llm)(nil)
	_ sdk.HealthChecker = (*llm)(nil)
	_ sdk.Closer        = (*llm)(nil)
)

// newLLM loads the configuration at path and watches it and its knowledge
// file. It returns a usable plugin even with an error, which then concerns
// only the watching.
func newLLM(path string, hc *http.Client, getenv func(string) string) (*llm, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	l := &llm{path: abs, hc: hc, getenv: getenv, now: time.Now, done: make(chan struct{})}
	l.reload()
	// Watch directories, not files: editors and deploy tools replace files
	// by renaming a new one over them, which a file watch would miss.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		close(l.done)
		return l, fmt.Errorf("llm: watch %s: %w", abs, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		close(l.done)
		return l, fmt.Errorf("llm: watch %s: %w", abs, err)
	}
	l.watcher = w
	l.watchKnowledge()
	go l.watch()
	return l, nil
}

// watchKnowledge adds the knowledge file's directory to the watch when it
// is not the configuration's.
func (l *llm) watchKnowledge() {
	l.mu.RLock()
	s := l.cur
	l.mu.RUnlock()
	if l.watcher == nil || s == nil || s.cfg.knowledgePath() == "" {
		return
	}
	if dir := filepath.Dir(s.cfg.knowledgePath()); dir != filepath.Dir(l.path) {
		_ = l.watcher.Add(dir)
	}
}

func (l *llm) watch() {
	defer close(l.done)
	for {
		select {
		case ev, ok := <-l.watcher.Events:
			if !ok {
				return
			}
			l.mu.RLock()
			kp := ""
			if l.cur != nil {
				kp = l.cur.cfg.knowledgePath()
			}
			l.mu.RUnlock()
			if name := filepath.Clean(ev.Name); name == l.path || (kp != "" && name == filepath.Clean(kp)) {
				l.reload()
				l.watchKnowledge()
			}
		case err, ok := <-l.watcher.Errors:
			if !ok {
				return
			}
			fmt.Fprintln(os.Stderr, "llm: watch:", err)
		}
	}
}

// reload reads the configuration and its knowledge; on failure it keeps
// the previous ones.
func (l *llm) reload() {
	s, err := load(l.path, l.hc, l.getenv)
	l.mu.Lock()
	if err == nil {
		l.cur = s
	}
	l.loadErr = err
	hook := l.onReload
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// load builds a setup from the configuration file at path.
func load(path string, hc *http.Client, getenv func(string) string) (*setup, error) {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		return nil, err
	}
	s := &setup{cfg: cfg, know: &knowledge{}}
	if kp := cfg.knowledgePath(); kp != "" {
		md, err := sdk.ReadFile(kp, sdk.MaxFileSize)
		if err != nil {
			return nil, fmt.Errorf("llm: %s: knowledge: %w", path, err)
		}
		s.know = newKnowledge(string(md), cfg.KnowledgeWholeMax)
	}
	switch cfg.Provider {
	case ProviderDify:
		s.model = &difyModel{hc: hc, cfg: cfg}
	default:
		s.model = newOpenAIModel(cfg, hc)
	}
	return s, nil
}

func (l *llm) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name:        "llm",
		Version:     "1.0.0",
		Description: "Answers messages with a language model (OpenAI-compatible or Dify) and a knowledge file, remembering each conversation.",
		Actions: []sdk.Action{{
			Name:        "answer",
			Description: "Answer the message with the model; the fallback when it fails or the day's token budget is spent.",
			Params: []sdk.Param{{
				Name:        "question",
				Description: "what to ask; empty: the message's text",
			}},
		}, {
			Name:        "usage",
			Description: "Today's usage of the account (answers, failures, tokens, latency), as a reply or, with to, a send.",
			Params: []sdk.Param{{
				Name:        "to",
				Description: "a wxid to send the report to; empty: reply with it",
			}},
		}},
	}, nil
}

func (l *llm) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	l.mu.RLock()
	s := l.cur
	loadErr := l.loadErr
	l.mu.RUnlock()
	if s == nil {
		return nil, fmt.Errorf("llm: no configuration: %w", loadErr)
	}
	switch req.Action {
	case "answer":
		return l.answer(ctx, s, req)
	case "usage":
		return l.usage(ctx, s, req)
	}
	return nil, fmt.Errorf("llm: unknown action %q (answer, usage)", req.Action)
}

// answer is the answer action.
func (l *llm) answer(ctx context.Context, s *setup, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Message == nil {
		return nil, errors.New("llm: answer needs a message; use it in a message rule, not a cron schedule")
	}
	question := strings.TrimSpace(req.Param("question"))
	if question == "" {
		question = strings.TrimSpace(req.Message.Text)
	}
	if question == "" {
		return &sdk.HandleResponse{}, nil
	}
	cfg := s.cfg
	now := l.now()
	conv := req.Message.Session
	if conv == "" {
		conv = req.Message.From
	}
	key := memoryKey(req.Account, conv)
	mem, err := loadMemory(ctx, req.Host, key, cfg.Memory.MaxAge, now)
	if err != nil {
		return nil, sdk.RetryLater(err)
	}
	if t, ok := mem.answered(req.ID); ok {
		// The same action again (a retry after a crash or a timeout): the
		// answer given, not a new one, and no second charge.
		return l.replies(cfg, t.Answer, sdk.Diagnostic{Severity: sdk.SeverityInfo, Summary: "llm: action " + req.ID + " was answered before; the same answer again"}), nil
	}
	var diags []sdk.Diagnostic
	day := now.In(cfg.location).Format(time.DateOnly)
	use, err := loadUsage(ctx, req.Host, req.Account, day)
	if err != nil {
		return nil, sdk.RetryLater(err)
	}
	if cfg.DailyTokens > 0 && use.TokensIn+use.TokensOut >= cfg.DailyTokens {
		l.record(ctx, req.Host, req.Account, day, func(u *usage) { u.Fallbacks++ })
		return l.fallback(cfg, sdk.Diagnostic{Severity: sdk.SeverityWarning,
			Summary: fmt.Sprintf("llm: %s spent its daily budget (%d of %d tokens on %s); the fallback answered", req.Account, use.TokensIn+use.TokensOut, cfg.DailyTokens, day),
			Detail:  "raise daily_tokens in the plugin's file, or wait for tomorrow"}), nil
	}
	system, used := l.prompt(s, question)
	if used != "" {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityInfo, Summary: "llm: knowledge sections used: " + used})
	}
	q := ask{System: system, Question: question, History: mem.Turns, User: "finderbot:" + req.Account + ":" + conv,
		DifyConversation: mem.DifyConversation}
	start := time.Now()
	ans, attempts, err := l.ask(ctx, s, q)
	took := time.Since(start)
	if err != nil {
		l.record(ctx, req.Host, req.Account, day, func(u *usage) { u.Failures++; u.Fallbacks++ })
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning,
			Summary: fmt.Sprintf("llm: the model failed after %d attempt(s) in %s; the fallback answered: %v", attempts, took.Round(time.Millisecond), err)})
		return l.fallback(cfg, diags...), nil
	}
	texts := splitAnswer(ans.Text, cfg.MaxAnswerRunes, cfg.MaxReplies)
	mem.add(turn{ID: req.ID, Question: question, Answer: strings.Join(texts, "\n"), At: now}, cfg.Memory.Turns)
	if ans.DifyConversation != "" {
		mem.DifyConversation, mem.DifyAt = ans.DifyConversation, now
	}
	if err := mem.save(ctx, req.Host, key); err != nil {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning, Summary: err.Error(), Detail: "the answer goes out; the conversation's next question will not see it"})
	}
	total := l.record(ctx, req.Host, req.Account, day, func(u *usage) {
		u.Answers++
		u.TokensIn += ans.TokensIn
		u.TokensOut += ans.TokensOut
		u.LatencyMS += took.Milliseconds()
	})
	l.maybeSweep(req.Host, cfg, now)
	diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityInfo,
		Summary: fmt.Sprintf("llm: answered in %s: %d tokens in, %d out; %s today: %d tokens", took.Round(time.Millisecond), ans.TokensIn, ans.TokensOut, req.Account, total)})
	resp := &sdk.HandleResponse{Diagnostics: diags}
	for _, t := range texts {
		resp.Replies = append(resp.Replies, sdk.Reply{Text: t})
	}
	return resp, nil
}

// replies answers with text as the configuration cuts it.
func (l *llm) replies(cfg *Config, text string, diags ...sdk.Diagnostic) *sdk.HandleResponse {
	resp := &sdk.HandleResponse{Diagnostics: diags}
	for _, t := range splitAnswer(text, cfg.MaxAnswerRunes, cfg.MaxReplies) {
		resp.Replies = append(resp.Replies, sdk.Reply{Text: t})
	}
	return resp
}

// fallback answers with the configured fallback, or nothing.
func (l *llm) fallback(cfg *Config, diags ...sdk.Diagnostic) *sdk.HandleResponse {
	return l.replies(cfg, cfg.Fallback, diags...)
}

// prompt is the system prompt with the knowledge for question, and the
// titles of the sections chosen ("" when the file went in whole or there
// is none).
func (l *llm) prompt(s *setup, question string) (string, string) {
	var b strings.Builder
	b.WriteString(s.cfg.SystemPrompt)
	k := s.know
	if k.whole != "" {
		b.WriteString("\n\n# 知识库\n\n")
		b.WriteString(k.whole)
		return strings.TrimSpace(b.String()), ""
	}
	picked := k.pick(question, s.cfg.KnowledgeSections)
	if len(picked) == 0 {
		if len(k.sections) > 0 {
			return strings.TrimSpace(b.String()), "none matched"
		}
		return strings.TrimSpace(b.String()), ""
	}
	b.WriteString("\n\n# 知识库（与问题最相关的部分）\n")
	titles := make([]string, len(picked))
	for i, sec := range picked {
		b.WriteString("\n")
		b.WriteString(sec.Text)
		b.WriteString("\n")
		titles[i] = "§" + sec.Title
	}
	return strings.TrimSpace(b.String()), strings.Join(titles, ", ") + fmt.Sprintf(" (of %d)", len(k.sections))
}

// ask calls the model within the timeout, trying again after a rate limit
// or a provider failure as long as the wait fits in the time left. It
// returns the attempts made.
func (l *llm) ask(ctx context.Context, s *setup, q ask) (answer, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		ans, err := s.model.answer(ctx, q)
		if err == nil {
			return ans, attempt, nil
		}
		if ctx.Err() != nil {
			return answer{}, attempt, fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)
		}
		var ce *callError
		if !errors.As(err, &ce) || !ce.retryable() || attempt > s.cfg.Retries {
			return answer{}, attempt, err
		}
		wait := ce.RetryAfter
		if wait == 0 {
			wait = 250 * time.Millisecond << (attempt - 1)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return answer{}, attempt, fmt.Errorf("%w; the provider asks to wait %s, past the %s timeout", err, wait, s.cfg.Timeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return answer{}, attempt, fmt.Errorf("no answer within %s: %w", s.cfg.Timeout, err)
		case <-t.C:
		}
	}
}

// usage are an account's figures of one day, kept under usageKey.
type usage struct {
	Answers   int64 `json:"answers"`
	Failures  int64 `json:"failures"`
	Fallbacks int64 `json:"fallbacks"`
	TokensIn  int64 `json:"tokens_in"`
	TokensOut int64 `json:"tokens_out"`
	LatencyMS int64 `json:"latency_ms"` // summed over the answers
}

func usageKey(account, day string) string { return "usage/" + account + "/" + day }

func loadUsage(ctx context.Context, h sdk.Host, account, day string) (usage, error) {
	var u usage
	v, ok, err := h.Get(ctx, usageKey(account, day))
	if err != nil {
		return u, fmt.Errorf("llm: read usage: %w", err)
	}
	if ok {
		_ = json.Unmarshal(v, &u) // a damaged record counts from zero
	}
	return u, nil
}

// record changes the account's usage of day and returns its tokens. A
// failure to store it loses the figure, never the answer.
func (l *llm) record(ctx context.Context, h sdk.Host, account, day string, change func(*usage)) int64 {
	l.usageMu.Lock()
	defer l.usageMu.Unlock()
	u, err := loadUsage(ctx, h, account, day)
	if err != nil {
		return 0
	}
	change(&u)
	if v, err := json.Marshal(u); err == nil {
		_ = h.Put(ctx, usageKey(account, day), v)
	}
	return u.TokensIn + u.TokensOut
}

// usage is the usage action: today's figures of the account.
func (l *llm) usage(ctx context.Context, s *setup, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	day := l.now().In(s.cfg.location).Format(time.DateOnly)
	u, err := loadUsage(ctx, req.Host, req.Account, day)
	if err != nil {
		return nil, sdk.RetryLater(err)
	}
	avg := int64(0)
	if u.Answers > 0 {
		avg = u.LatencyMS / u.Answers
	}
	text := fmt.Sprintf("%s %s 模型用量：回答 %d 次，失败 %d 次，兜底回复 %d 次；输入 %d tokens，输出 %d tokens；平均耗时 %d ms。",
		req.Account, day, u.Answers, u.Failures, u.Fallbacks, u.TokensIn, u.TokensOut, avg)
	if s.cfg.DailyTokens > 0 {
		text += fmt.Sprintf(" 今日预算 %d tokens。", s.cfg.DailyTokens)
	}
	if to := req.Param("to"); to != "" {
		return &sdk.HandleResponse{Sends: []sdk.Send{{To: to, Text: text}}}, nil
	}
	return sdk.TextReply(text), nil
}

// maybeSweep starts a sweep of the plugin's keys at most once an hour, off
// the answer's path.
func (l *llm) maybeSweep(h sdk.Host, cfg *Config, now time.Time) {
	l.sweepMu.Lock()
	due := l.swept.IsZero() || now.Sub(l.swept) >= time.Hour
	if due {
		l.swept = now
		l.sweeps.Add(1)
	}
	hook := l.onSweep
	l.sweepMu.Unlock()
	if !due {
		return
	}
	go func() {
		defer l.sweeps.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l.sweep(ctx, h, cfg, now)
		if hook != nil {
			hook()
		}
	}()
}

// usageDays is how long a day's usage is kept.
const usageDays = 7

// sweep forgets the memory of conversations silent for longer than
// memory.max_age and the usage of days older than a week, so that the
// plugin's keys in the daemon's store (10,000 at most) are bounded by the
// conversations of one max_age, not of all time. A key it cannot read or
// delete is left for the next sweep.
func (l *llm) sweep(ctx context.Context, h sdk.Host, cfg *Config, now time.Time) {
	keys, err := h.Keys(ctx, "mem/")
	if err == nil {
		for _, k := range keys {
			if m, err := loadMemory(ctx, h, k, cfg.Memory.MaxAge, now); err == nil && len(m.Turns) == 0 && m.DifyConversation == "" {
				_ = h.Delete(ctx, k)
			}
		}
	}
	oldest := now.In(cfg.location).AddDate(0, 0, -usageDays).Format(time.DateOnly)
	if keys, err := h.Keys(ctx, "usage/"); err == nil {
		for _, k := range keys {
			if day := k[strings.LastIndexByte(k, '/')+1:]; day < oldest {
				_ = h.Delete(ctx, k)
			}
		}
	}
}

// Health reports a configuration that failed to load, and that the previous
// one is still answering.
func (l *llm) Health(context.Context) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.loadErr != nil && l.cur != nil:
		return fmt.Errorf("%w (answering with the configuration loaded before)", l.loadErr)
	case l.loadErr != nil:
		return l.loadErr
	case l.watcher == nil:
		return fmt.Errorf("llm: not watching %s; changes need a restart", l.path)
	}
	return nil
}

// Close stops watching the files, once a sweep under way is done.
func (l *llm) Close(context.Context) error {
	l.sweeps.Wait()
	if l.watcher == nil {
		return nil
	}
	err := l.watcher.Close()
	<-l.done
	return err
}
