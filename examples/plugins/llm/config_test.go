package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigErrorsNameFileAndLine: each mistake is refused with the file,
// the line and the key.
func TestConfigErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ yaml, want string }{
		"unknown key":      {"provider: openai\nbase_url: http://x\nmodel: m\nmodle: x\n", "field modle not found"},
		"no model":         {"provider: openai\nbase_url: http://x\n", "llm.yaml: model: is required"},
		"bad provider":     {"provider: claude\nbase_url: http://x\n", "llm.yaml:1: provider: \"claude\": want openai or dify"},
		"bad url":          {"provider: dify\nbase_url: api.dify.ai\n", "llm.yaml:2: base_url: \"api.dify.ai\" is not an http:// or https:// URL"},
		"missing key":      {"provider: dify\nbase_url: http://x\napi_key_env: NOPE\n", "llm.yaml:3: api_key_env: the environment variable NOPE is empty"},
		"bad timezone":     {"provider: dify\nbase_url: http://x\ntimezone: Mars/Base\n", "llm.yaml:3: timezone:"},
		"turns":            {"provider: dify\nbase_url: http://x\nmemory:\n  turns: 99\n", "llm.yaml:4: memory.turns: want 0 to 50, got 99"},
		"answer too short": {"provider: dify\nbase_url: http://x\nmax_answer_runes: 5\n", "llm.yaml:3: max_answer_runes: want at least 20"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "llm.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzLoadConfig: any file is loaded or refused with an error naming it,
// never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add("provider: openai\nbase_url: http://x\nmodel: m\nmemory: {turns: 3, max_age: 1h}\n")
	f.Add("provider: dify\nbase_url: https://api.dify.ai/v1\napi_key_env: K\n")
	f.Add("- a\n- b\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml string) {
		path := filepath.Join(dir, "llm.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(path, func(string) string { return "k" })
		if err == nil && (c.location == nil || c.MaxReplies < 1) {
			t.Fatalf("accepted %q as %+v", yaml, c)
		}
		if err != nil && !strings.Contains(err.Error(), "llm.yaml") {
			t.Fatalf("error %v does not name the file", err)
		}
	})
}
