package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

func TestPost(t *testing.T) {
	t.Parallel()
	type seen struct {
		body      payload
		signature string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &s.body); err != nil {
			t.Errorf("endpoint got invalid JSON: %v", err)
		}
		mac := hmac.New(sha256.New, []byte("k3y"))
		mac.Write(raw)
		if sig := r.Header.Get("X-Finderbot-Signature"); sig != "" && sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("bad signature %q", sig)
		}
		s.signature = r.Header.Get("X-Finderbot-Signature")
		got <- s
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			io.WriteString(w, `{"reply": "您好", "replies": ["第二句", " "]}`)
		case "/text":
			io.WriteString(w, "  收到："+s.body.Message.Text+"\n")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		case "/busy":
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case "/gone":
			http.Error(w, "no such hook", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	p := sdktest.Start(t, &webhook{client: srv.Client()}, nil)

	for name, tc := range map[string]struct {
		path, secret string
		want         []sdk.Reply
		err          string
		temporary    bool
	}{
		"text answer":        {path: "/text", want: []sdk.Reply{{Text: "收到：你好"}}},
		"json answer signed": {path: "/json", secret: "k3y", want: []sdk.Reply{{Text: "您好"}, {Text: "第二句"}}},
		"no content":         {path: "/none"},
		"server busy":        {path: "/busy", err: "503 Service Unavailable: try later", temporary: true},
		"not found":          {path: "/gone", err: "404 Not Found: no such hook"},
	} {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"url": srv.URL + tc.path}
			if tc.secret != "" {
				params["secret"] = tc.secret
			}
			resp, err := p.Handle(t.Context(), &sdk.HandleRequest{
				Action: "post", Params: params, Message: sdktest.Text("你好"), Account: "shop",
			})
			s := <-got
			if s.body.Account != "shop" || s.body.Message == nil || s.body.Message.Text != "你好" || s.body.Message.ID != sdktest.Text("").ID {
				t.Errorf("endpoint got %+v", s.body)
			}
			if (tc.secret != "") != (s.signature != "") {
				t.Errorf("signature %q with secret %q", s.signature, tc.secret)
			}
			if tc.err != "" {
				var ae *sdk.ActionError
				if !errors.As(err, &ae) || !strings.Contains(ae.Message, tc.err) || ae.Temporary != tc.temporary {
					t.Fatalf("err = %v, want %q (temporary %v)", err, tc.err, tc.temporary)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.Replies, tc.want) {
				t.Errorf("replies = %+v, want %+v", resp.Replies, tc.want)
			}
		})
	}
}

func TestPostBadURL(t *testing.T) {
	t.Parallel()
	w := &webhook{client: http.DefaultClient}
	_, err := w.Handle(context.Background(), &sdk.HandleRequest{Action: "post", Params: map[string]string{"url": "ftp://x"}})
	if err == nil || !strings.Contains(err.Error(), `"ftp://x" is not an http:// or https:// URL`) {
		t.Errorf("err = %v", err)
	}
}

func TestPostHonoursDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	p := sdktest.Start(t, &webhook{client: srv.Client()}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Handle(ctx, &sdk.HandleRequest{Action: "post", Params: map[string]string{"url": srv.URL}, Message: sdktest.Text("x")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the daemon's deadline", err)
	}
}
