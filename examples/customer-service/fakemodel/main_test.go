package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAnswersFromTheKnowledgeItWasGiven: the first line under the first
// heading of the prompt's knowledge, in an OpenAI-shaped answer with usage;
// without knowledge, a note that a person will answer.
func TestAnswersFromTheKnowledgeItWasGiven(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(handler(0))
	t.Cleanup(srv.Close)
	tests := map[string]struct{ system, want string }{
		"knowledge":    {"你是客服。\n\n# 知识库（与问题最相关的部分）\n\n## 茶具清洗\n\n紫砂壶只用清水冲洗。\n", "（模拟模型）关于「茶具清洗」：紫砂壶只用清水冲洗。"},
		"no knowledge": {"你是客服。", "（模拟模型）您问的是「怎么清洗」，这个问题我请人工客服稍后回复您。"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body, _ := json.Marshal(map[string]any{"model": "fake", "messages": []message{{"system", tc.system}, {"user", "怎么清洗"}}})
			resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Choices []struct{ Message message } `json:"choices"`
				Usage   struct {
					TotalTokens int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if len(out.Choices) != 1 || out.Choices[0].Message.Content != tc.want || out.Usage.TotalTokens == 0 {
				t.Fatalf("answer %+v", out)
			}
		})
	}
}
