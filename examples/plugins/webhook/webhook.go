package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// maxAnswer bounds how much of an endpoint's answer is read.
const maxAnswer = 64 << 10

// webhook posts messages to the URL given in its params. It keeps no state:
// every call carries its own URL and secret.
type webhook struct {
	client *http.Client
}

var _ sdk.Plugin = (*webhook)(nil)

// payload is the JSON body posted to the endpoint.
type payload struct {
	Account string       `json:"account"`
	Message *sdk.Message `json:"message,omitempty"`
	Tick    *tick        `json:"tick,omitempty"`
}

type tick struct {
	Schedule string    `json:"schedule"`
	Time     time.Time `json:"time"`
}

// answer is the JSON an endpoint may answer with.
type answer struct {
	Reply   string   `json:"reply"`
	Replies []string `json:"replies"`
}

func (w *webhook) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name:        "webhook",
		Version:     "1.0.0",
		Description: "Posts the message to an HTTP endpoint and relays its answer as the reply.",
		Actions: []sdk.Action{{
			Name:        "post",
			Description: "POST the message as JSON to url; a text or {\"reply\": ...} answer becomes the reply.",
			Params: []sdk.Param{
				{Name: "url", Description: "the endpoint, http:// or https://", Required: true},
				{Name: "secret", Description: "when set, the body is signed: X-Finderbot-Signature: sha256=<hex HMAC-SHA256>"},
			},
		}},
	}, nil
}

func (w *webhook) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Action != "post" {
		return nil, fmt.Errorf("webhook: unknown action %q", req.Action)
	}
	target := req.Param("url")
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: url %q is not an http:// or https:// URL", target)
	}
	p := payload{Account: req.Account, Message: req.Message}
	if req.Tick != nil {
		p.Tick = &tick{Schedule: req.Tick.Schedule, Time: req.Tick.Time}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", "finderbot-webhook/1.0")
	if secret := req.Param("secret"); secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		hreq.Header.Set("X-Finderbot-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := w.client.Do(hreq)
	if err != nil {
		// The endpoint may come back: let the daemon retry.
		return nil, sdk.RetryLater(fmt.Errorf("webhook: %w", err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, sdk.RetryLater(fmt.Errorf("webhook: %s: reading the answer: %w", target, err))
	}
	if len(data) > maxAnswer {
		return nil, fmt.Errorf("webhook: %s: answer longer than %d bytes", target, maxAnswer)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, sdk.RetryLater(fmt.Errorf("webhook: %s: %s: %s", target, resp.Status, snippet(data)))
	case resp.StatusCode >= 300:
		return nil, fmt.Errorf("webhook: %s: %s: %s", target, resp.Status, snippet(data))
	}
	return parseAnswer(resp.Header.Get("Content-Type"), data)
}

// parseAnswer turns a successful answer into replies: JSON {"reply": "..."}
// or {"replies": [...]}, or any other body as the text of one reply.
func parseAnswer(contentType string, data []byte) (*sdk.HandleResponse, error) {
	out := &sdk.HandleResponse{}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		if len(bytes.TrimSpace(data)) == 0 {
			return out, nil
		}
		var a answer
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("webhook: the answer is not the JSON expected ({\"reply\": \"...\"}): %w", err)
		}
		for _, r := range append([]string{a.Reply}, a.Replies...) {
			if strings.TrimSpace(r) != "" {
				out.Replies = append(out.Replies, sdk.Reply{Text: r})
			}
		}
		return out, nil
	}
	if text := strings.TrimSpace(string(data)); text != "" {
		out.Replies = append(out.Replies, sdk.Reply{Text: text})
	}
	return out, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty answer)"
	}
	return s
}
