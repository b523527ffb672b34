package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/finderbot/finderbot/sdk"
)

// Providers a configuration may name.
const (
	// ProviderOpenAI is any OpenAI-compatible Chat Completions API:
	// OpenAI, DeepSeek, Qwen (DashScope compatible mode), Moonshot, Zhipu,
	// Ollama, vLLM, chosen by base_url and model.
	ProviderOpenAI = "openai"
	// ProviderDify is a Dify app's chat API (/v1/chat-messages), for teams
	// that keep their prompt and knowledge in Dify.
	ProviderDify = "dify"
)

// Config is the plugin's file, llm.yaml beside the binary by default.
type Config struct {
	// Provider is ProviderOpenAI or ProviderDify.
	Provider string `yaml:"provider"`
	// BaseURL is the API root: ".../v1" for both kinds.
	BaseURL string `yaml:"base_url"`
	// Model is the model name (OpenAI kind only).
	Model string `yaml:"model"`
	// APIKeyEnv names the environment variable that holds the API key;
	// "" sends none (a local Ollama or vLLM). The key itself never goes in
	// the file.
	APIKeyEnv string `yaml:"api_key_env"`
	// SystemPrompt leads every conversation (OpenAI kind only; a Dify app
	// has its own).
	SystemPrompt string `yaml:"system_prompt"`
	// Knowledge is a Markdown FAQ, relative to this file. A file up to
	// KnowledgeWholeMax bytes goes into the system prompt whole; a larger
	// one is cut into its sections and the KnowledgeSections most relevant
	// to each question go in.
	Knowledge         string `yaml:"knowledge"`
	KnowledgeWholeMax int    `yaml:"knowledge_whole_max"`
	KnowledgeSections int    `yaml:"knowledge_sections"`
	// Memory is what is kept of each conversation.
	Memory Memory `yaml:"memory"`
	// Timeout bounds one answer, retries included.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a rate-limited (429 with a Retry-After
	// that fits in the timeout) or failed (5xx) call is tried again.
	Retries int `yaml:"retries"`
	// MaxTokens bounds the model's answer, Temperature tunes it (OpenAI
	// kind only; 0 leaves the model's default).
	MaxTokens   int64   `yaml:"max_tokens"`
	Temperature float64 `yaml:"temperature"`
	// MaxAnswerRunes bounds one WeChat message; a longer answer is split at
	// sentence ends into at most MaxReplies messages, and what still does
	// not fit is cut at a character boundary with "…".
	MaxAnswerRunes int `yaml:"max_answer_runes"`
	MaxReplies     int `yaml:"max_replies"`
	// DailyTokens bounds the tokens (in and out) one account may spend a
	// day, in Timezone; 0 for no bound.
	DailyTokens int64  `yaml:"daily_tokens"`
	Timezone    string `yaml:"timezone"`
	// Fallback is the reply when the model fails or the budget is spent;
	// "" answers nothing then.
	Fallback string `yaml:"fallback"`

	dir      string         // the file's directory
	apiKey   string         // from APIKeyEnv
	location *time.Location // of Timezone
}

// Memory is the conversation memory's policy.
type Memory struct {
	// Turns is how many question-answer pairs are kept per conversation.
	Turns int `yaml:"turns"`
	// MaxAge forgets turns older than this.
	MaxAge time.Duration `yaml:"max_age"`
}

// defaults are the values a file leaves out.
func defaults() Config {
	return Config{
		Provider: ProviderOpenAI, KnowledgeWholeMax: 4000, KnowledgeSections: 3,
		Memory:  Memory{Turns: 6, MaxAge: 24 * time.Hour},
		Timeout: 8 * time.Second, Retries: 1, MaxTokens: 512,
		MaxAnswerRunes: 300, MaxReplies: 2, Timezone: "Asia/Shanghai",
	}
}

// loadConfig reads and checks the file at path; errors name the file and,
// where there is one, the line. getenv reads the API key.
func loadConfig(path string, getenv func(string) string) (*Config, error) {
	data, err := sdk.ReadFile(path, sdk.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	c := defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("llm: %s: %w", path, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	bad := func(key, format string, args ...any) error {
		where := path
		if line := lineOf(&root, key); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		return fmt.Errorf("llm: %s: %s: %s", where, key, fmt.Sprintf(format, args...))
	}
	switch c.Provider {
	case ProviderOpenAI:
		if c.Model == "" {
			return nil, bad("model", "is required for provider openai (deepseek-chat, qwen-plus, moonshot-v1-8k, glm-4-flash, llama3.1, …)")
		}
	case ProviderDify:
	default:
		return nil, bad("provider", "%q: want openai or dify", c.Provider)
	}
	if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		return nil, bad("base_url", "%q is not an http:// or https:// URL", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	switch {
	case c.Timeout <= 0:
		return nil, bad("timeout", "must be positive")
	case c.Retries < 0 || c.Retries > 5:
		return nil, bad("retries", "want 0 to 5, got %d", c.Retries)
	case c.MaxAnswerRunes < 20:
		return nil, bad("max_answer_runes", "want at least 20, got %d", c.MaxAnswerRunes)
	case c.MaxReplies < 1 || c.MaxReplies > 10:
		return nil, bad("max_replies", "want 1 to 10, got %d", c.MaxReplies)
	case c.Memory.Turns < 0 || c.Memory.Turns > 50:
		return nil, bad("memory.turns", "want 0 to 50, got %d", c.Memory.Turns)
	case c.Memory.MaxAge <= 0:
		return nil, bad("memory.max_age", "must be positive")
	case c.DailyTokens < 0:
		return nil, bad("daily_tokens", "must not be negative (0 for no limit)")
	case c.KnowledgeSections < 1:
		return nil, bad("knowledge_sections", "want at least 1")
	}
	if c.location, err = time.LoadLocation(c.Timezone); err != nil {
		return nil, bad("timezone", "%v", err)
	}
	if c.APIKeyEnv != "" {
		if c.apiKey = getenv(c.APIKeyEnv); c.apiKey == "" {
			return nil, bad("api_key_env", "the environment variable %s is empty; set it to the API key (or leave api_key_env out for a local model)", c.APIKeyEnv)
		}
	}
	c.dir = filepath.Dir(path)
	return &c, nil
}

// knowledgePath is the knowledge file's path, "" for none.
func (c *Config) knowledgePath() string {
	if c.Knowledge == "" || filepath.IsAbs(c.Knowledge) {
		return c.Knowledge
	}
	return filepath.Join(c.dir, c.Knowledge)
}

// lineOf returns the line of a dotted key in a YAML document, 0 when it is
// not there.
func lineOf(root *yaml.Node, key string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(key, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}
