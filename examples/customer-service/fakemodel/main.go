// Command fakemodel is a tiny OpenAI-compatible Chat Completions server for
// trying the customer-service example without an API key: it answers each
// question from the knowledge the llm plugin put in the system prompt,
// the first line under the most relevant heading it was given, or says a
// person will answer. It is no model: it only shows the wiring.
//
//	go run ./examples/customer-service/fakemodel                 # 127.0.0.1:8787
//	go run ./examples/customer-service/fakemodel -delay 2s       # a slow model
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8787", "address to serve the API on (base_url: http://ADDRESS/v1)")
	delay := flag.Duration("delay", 0, "how long each answer takes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: handler(*delay), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("fake model serving an OpenAI-compatible API at http://%s/v1 (delay %s)", *listen, *delay)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// handler answers POST /v1/chat/completions.
func handler(delay time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string    `json:"model"`
			Messages []message `json:"messages"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
			http.Error(w, `{"error":{"message":"want a chat completion request","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		var system, question string
		in := 0
		for _, m := range req.Messages {
			in += utf8.RuneCountInString(m.Content)
			switch m.Role {
			case "system":
				system = m.Content
			case "user":
				question = m.Content
			}
		}
		text := answer(system, question)
		out := utf8.RuneCountInString(text)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": fmt.Sprintf("fake-%d", time.Now().UnixNano()), "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": message{Role: "assistant", Content: text}}},
			"usage":   map[string]int{"prompt_tokens": in / 2, "completion_tokens": out / 2, "total_tokens": (in + out) / 2},
		})
	})
	return mux
}

// answer is the first line of text under the first section heading of the
// knowledge in the system prompt — the llm plugin puts the most relevant
// first — or a note that a person will answer.
func answer(system, question string) string {
	_, knowledge, ok := strings.Cut(system, "# 知识库")
	if ok {
		heading := ""
		for _, line := range strings.Split(knowledge, "\n")[1:] {
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, "#"):
				heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			case line != "" && heading != "":
				return fmt.Sprintf("（模拟模型）关于「%s」：%s", heading, line)
			}
		}
	}
	return fmt.Sprintf("（模拟模型）您问的是「%s」，这个问题我请人工客服稍后回复您。", question)
}
