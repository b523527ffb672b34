// Command llm is a finderbot plugin that answers messages with a language
// model — any OpenAI-compatible Chat Completions API (OpenAI, DeepSeek,
// Qwen, Moonshot, Zhipu, Ollama, vLLM) or a Dify app — from a knowledge
// file, remembering each conversation. Its configuration is llm.yaml beside
// the binary (LLM_CONFIG names another), reloaded when it changes. See
// README.md.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/finderbot/finderbot/sdk"
)

func main() {
	path := os.Getenv("LLM_CONFIG")
	if path == "" {
		path = "llm.yaml"
	}
	l, err := newLLM(path, &http.Client{Transport: http.DefaultTransport}, os.Getenv)
	if err != nil {
		// Without a watcher the configuration cannot follow its file, but
		// the plugin still answers with what it loaded; its health says so.
		fmt.Fprintln(os.Stderr, err)
	}
	sdk.Serve(l)
}
