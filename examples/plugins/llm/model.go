package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// ask is one question to a model.
type ask struct {
	// System is the system prompt with the knowledge chosen for the
	// question (OpenAI kind).
	System string
	// History are the conversation's remembered turns, oldest first.
	History  []turn
	Question string
	// User identifies the asker to the provider (Dify's user).
	User string
	// DifyConversation continues a Dify conversation; "" starts one.
	DifyConversation string
}

// answer is a model's answer and what it cost.
type answer struct {
	Text                string
	TokensIn, TokensOut int64
	DifyConversation    string
}

// model answers questions. Implementations are safe for concurrent use.
type model interface {
	answer(ctx context.Context, q ask) (answer, error)
}

// callError is a failed call with what the provider said about trying
// again.
type callError struct {
	Status int // HTTP status, 0 when there was no answer
	// RetryAfter is the provider's Retry-After, 0 when it gave none.
	RetryAfter time.Duration
	Err        error
}

func (e *callError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *callError) Unwrap() error { return e.Err }

// retryable reports whether trying again may help: rate limited, or the
// provider failed (5xx).
func (e *callError) retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// errMalformed marks an answer that could not be understood.
var errMalformed = errors.New("malformed answer")

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// openAIModel speaks the Chat Completions API through the official
// client, which covers every OpenAI-compatible provider by base URL.
type openAIModel struct {
	client openai.Client
	cfg    *Config
}

func newOpenAIModel(c *Config, hc *http.Client) *openAIModel {
	client := openai.NewClient(
		option.WithBaseURL(c.BaseURL+"/"),
		option.WithAPIKey(c.apiKey),
		option.WithHTTPClient(hc),
		// Retries are the plugin's, bounded by its timeout and budget.
		option.WithMaxRetries(0),
	)
	return &openAIModel{client: client, cfg: c}
}

func (m *openAIModel) answer(ctx context.Context, q ask) (answer, error) {
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, 2+2*len(q.History))
	if q.System != "" {
		msgs = append(msgs, openai.SystemMessage(q.System))
	}
	for _, t := range q.History {
		msgs = append(msgs, openai.UserMessage(t.Question), openai.AssistantMessage(t.Answer))
	}
	msgs = append(msgs, openai.UserMessage(q.Question))
	params := openai.ChatCompletionNewParams{Model: m.cfg.Model, Messages: msgs}
	if m.cfg.MaxTokens > 0 {
		params.MaxTokens = openai.Int(m.cfg.MaxTokens)
	}
	if m.cfg.Temperature > 0 {
		params.Temperature = openai.Float(m.cfg.Temperature)
	}
	resp, err := m.client.Chat.Completions.New(ctx, params)
	if err != nil {
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			ce := &callError{Status: apiErr.StatusCode, Err: errors.New(firstLine(strings.TrimSpace(apiErr.Message + " " + apiErr.Code)))}
			if apiErr.Response != nil {
				ce.RetryAfter = retryAfter(apiErr.Response.Header, time.Now())
			}
			return answer{}, ce
		}
		if ctx.Err() == nil && !isTransport(err) {
			return answer{}, &callError{Err: fmt.Errorf("%w: %v", errMalformed, err)}
		}
		return answer{}, &callError{Err: err}
	}
	if len(resp.Choices) == 0 {
		return answer{}, &callError{Err: fmt.Errorf("%w: no choices", errMalformed)}
	}
	text := strings.TrimSpace(resp.Choices[0].Message.Content)
	if text == "" {
		return answer{}, &callError{Err: fmt.Errorf("%w: an empty answer (finish reason %q)", errMalformed, resp.Choices[0].FinishReason)}
	}
	return answer{Text: text, TokensIn: resp.Usage.PromptTokens, TokensOut: resp.Usage.CompletionTokens}, nil
}

// isTransport tells a failure to reach the provider from one to read it.
func isTransport(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF")
}

// difyModel speaks a Dify app's chat API: POST /chat-messages in blocking
// mode, continuing the conversation by its conversation_id.
type difyModel struct {
	hc  *http.Client
	cfg *Config
}

// maxAnswerBody bounds a provider's answer read.
const maxAnswerBody = 1 << 20

type difyRequest struct {
	Inputs         map[string]string `json:"inputs"`
	Query          string            `json:"query"`
	ResponseMode   string            `json:"response_mode"`
	ConversationID string            `json:"conversation_id"`
	User           string            `json:"user"`
}

type difyResponse struct {
	Answer         *string `json:"answer"`
	ConversationID string  `json:"conversation_id"`
	Metadata       struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	} `json:"metadata"`
}

func (m *difyModel) answer(ctx context.Context, q ask) (answer, error) {
	body, err := json.Marshal(difyRequest{Inputs: map[string]string{}, Query: q.Question, ResponseMode: "blocking",
		ConversationID: q.DifyConversation, User: q.User})
	if err != nil {
		return answer{}, &callError{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.BaseURL+"/chat-messages", bytes.NewReader(body))
	if err != nil {
		return answer{}, &callError{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if m.cfg.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.apiKey)
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return answer{}, &callError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	if err != nil {
		return answer{}, &callError{Status: resp.StatusCode, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return answer{}, &callError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, time.Now()),
			Err: errors.New(firstLine(strings.TrimSpace(cutRunes(string(data), 200))))}
	}
	var r difyResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return answer{}, &callError{Status: resp.StatusCode, Err: fmt.Errorf("%w: %v", errMalformed, err)}
	}
	if r.Answer == nil || strings.TrimSpace(*r.Answer) == "" {
		return answer{}, &callError{Status: resp.StatusCode, Err: fmt.Errorf("%w: no answer", errMalformed)}
	}
	return answer{Text: strings.TrimSpace(*r.Answer), TokensIn: r.Metadata.Usage.PromptTokens,
		TokensOut: r.Metadata.Usage.CompletionTokens, DifyConversation: r.ConversationID}, nil
}
