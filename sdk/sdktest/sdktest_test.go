package sdktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// probe is a plugin that exercises every part of the protocol.
type probe struct {
	closed chan struct{}
	gotCtx chan context.Context
}

var (
	_ sdk.Plugin        = (*probe)(nil)
	_ sdk.HealthChecker = (*probe)(nil)
	_ sdk.Closer        = (*probe)(nil)
)

func (p *probe) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name: "probe", Version: "1.2.3", Description: "tests the protocol",
		Actions: []sdk.Action{{
			Name: "echo", Description: "echoes",
			Params: []sdk.Param{{Name: "prefix", Description: "put before", Required: true, Default: ">"}},
		}},
	}, nil
}

func (p *probe) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	h := req.Host
	switch req.Action {
	case "echo":
		text := ""
		if req.Message != nil {
			text = req.Message.Text
		}
		if req.Tick != nil {
			text = req.Tick.Schedule + "@" + req.Tick.Time.UTC().Format(time.RFC3339)
		}
		return &sdk.HandleResponse{
			Replies:     []sdk.Reply{{Text: req.Param("prefix") + text}},
			Sends:       []sdk.Send{{Account: req.Account, To: "wxid_a", Text: "copy"}},
			Diagnostics: []sdk.Diagnostic{{Severity: sdk.SeverityWarning, Summary: "s", Detail: "d"}},
		}, nil
	case "id":
		return sdk.TextReply(req.ID), nil
	case "message":
		// Return the message as the plugin saw it, to check the conversion.
		b, err := json.Marshal(req.Message)
		return sdk.TextReply(string(b)), err
	case "host":
		if err := h.Put(ctx, "a/1", []byte("x")); err != nil {
			return nil, err
		}
		if err := h.Put(ctx, "a/2", []byte("y")); err != nil {
			return nil, err
		}
		if err := h.Put(ctx, "b", []byte("z")); err != nil {
			return nil, err
		}
		if err := h.Delete(ctx, "a/2"); err != nil {
			return nil, err
		}
		v, ok, err := h.Get(ctx, "a/1")
		if err != nil {
			return nil, err
		}
		_, missing, err := h.Get(ctx, "a/2")
		if err != nil {
			return nil, err
		}
		keys, err := h.Keys(ctx, "a/")
		if err != nil {
			return nil, err
		}
		tok, err := h.Token(ctx, "main")
		if err != nil {
			return nil, err
		}
		if err := h.Send(ctx, sdk.Send{To: "wxid_b", Text: "hi"}); err != nil {
			return nil, err
		}
		sdk.NewLogger(h).With("plugin_attr", 1).WithGroup("g").InfoContext(ctx, "hello", "k", "v")
		_, tokErr := h.Token(ctx, "nope")
		return sdk.TextReply(fmt.Sprintf("%s %v %v %v %s %v", v, ok, missing, keys, tok, tokErr)), nil
	case "fail":
		return nil, errors.New("cannot")
	case "retry":
		return nil, sdk.RetryLater(errors.New("backend down"))
	case "wait":
		p.gotCtx <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

func (p *probe) Health(context.Context) error { return errors.New("table broken") }

func (p *probe) Close(context.Context) error {
	close(p.closed)
	return nil
}

func newProbe() *probe {
	return &probe{closed: make(chan struct{}), gotCtx: make(chan context.Context, 1)}
}

func TestStart(t *testing.T) {
	t.Parallel()
	host := sdktest.NewHost()
	host.SetToken("main", "tok-1")
	rp := sdktest.Start(t, newProbe(), host)
	ctx := t.Context()

	t.Run("describe", func(t *testing.T) {
		d, err := rp.Describe(ctx, &sdk.DescribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := &sdk.DescribeResponse{
			Name: "probe", Version: "1.2.3", Description: "tests the protocol",
			Actions: []sdk.Action{{
				Name: "echo", Description: "echoes",
				Params: []sdk.Param{{Name: "prefix", Description: "put before", Required: true, Default: ">"}},
			}},
		}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("Describe = %+v, want %+v", d, want)
		}
	})
	t.Run("echo", func(t *testing.T) {
		resp, err := rp.Handle(ctx, &sdk.HandleRequest{
			Action: "echo", Params: map[string]string{"prefix": "» "}, Message: sdktest.Text("你好"), Account: "acc",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := &sdk.HandleResponse{
			Replies:     []sdk.Reply{{Text: "» 你好"}},
			Sends:       []sdk.Send{{Account: "acc", To: "wxid_a", Text: "copy"}},
			Diagnostics: []sdk.Diagnostic{{Severity: sdk.SeverityWarning, Summary: "s", Detail: "d"}},
		}
		if !reflect.DeepEqual(resp, want) {
			t.Errorf("Handle = %+v, want %+v", resp, want)
		}
	})
	t.Run("tick", func(t *testing.T) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		resp, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "echo", Tick: &sdk.Tick{Schedule: "morning", Time: at}})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Replies[0].Text; got != "morning@2026-01-02T03:04:05Z" {
			t.Errorf("reply = %q", got)
		}
	})
	t.Run("message survives the wire", func(t *testing.T) {
		m := sdktest.Text("x")
		m.ID = 1<<63 + 12345 // beyond 2^53: must stay exact
		m.Time = time.Unix(0, 1700000000123456789)
		m.FromSelf = true
		m.Source = "<msgsource/>"
		m.ParseError = "pe"
		m.Sys = &sdk.SysMsg{Type: "functionmsg", Fields: map[string]string{"live_id": "1"}}
		m.Image = &sdk.Image{AESKey: "k", MD5: "m", Length: 1, HDLength: 2, ThumbURL: "t", MidURL: "mi", BigURL: "b",
			ThumbWidth: 3, ThumbHeight: 4, Attrs: map[string]string{"a": "b"}}
		resp, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "message", Message: m})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := resp.Replies[0].Text, string(b); got != want {
			t.Errorf("plugin saw\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("id survives the wire", func(t *testing.T) {
		for name, id := range map[string]string{
			"none":       "",
			"outbox key": "acc/9008843899058959155/r0/plugin:crm.record",
			"unicode":    "动作-1\u00e9",
			"long":       strings.Repeat("0123456789abcdef", 256),
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				for attempt := range 2 { // a retry carries the ID as given
					resp, err := rp.Handle(ctx, &sdk.HandleRequest{ID: id, Action: "id", Message: sdktest.Text("x")})
					if err != nil {
						t.Fatal(err)
					}
					if got := resp.Replies[0].Text; got != id {
						t.Errorf("attempt %d: plugin saw ID %q, want %q", attempt+1, got, id)
					}
				}
			})
		}
	})
	t.Run("host callbacks", func(t *testing.T) {
		resp, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "host"})
		if err != nil {
			t.Fatal(err)
		}
		want := "x true false [a/1] tok-1 sdk: host: token nope: sdktest: no token for session nope"
		if got := resp.Replies[0].Text; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got, want := host.Sends(), []sdk.Send{{To: "wxid_b", Text: "hi"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("Sends = %+v, want %+v", got, want)
		}
		logs := host.Logs()
		wantLog := sdktest.LogRecord{Level: slog.LevelInfo, Message: "hello", Attrs: map[string]string{"plugin_attr": "1", "g.k": "v"}}
		if len(logs) != 1 || !reflect.DeepEqual(logs[0], wantLog) {
			t.Errorf("Logs = %+v, want [%+v]", logs, wantLog)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for name, tc := range map[string]struct {
			action    string
			temporary bool
			msg       string
		}{
			"plain":       {action: "fail", msg: "cannot"},
			"retry later": {action: "retry", temporary: true, msg: "backend down"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := rp.Handle(ctx, &sdk.HandleRequest{Action: tc.action})
				var ae *sdk.ActionError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v (%T), want *sdk.ActionError", err, err)
				}
				if ae.Message != tc.msg || ae.Temporary != tc.temporary {
					t.Errorf("got %+v, want message %q temporary %v", ae, tc.msg, tc.temporary)
				}
			})
		}
	})
	t.Run("health", func(t *testing.T) {
		var ae *sdk.ActionError
		if err := rp.Health(ctx); !errors.As(err, &ae) || ae.Message != "table broken" {
			t.Errorf("Health = %v, want the plugin's problem", err)
		}
	})
}

func TestDeadlineReachesPlugin(t *testing.T) {
	t.Parallel()
	p := newProbe()
	rp := sdktest.Start(t, p, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "wait"})
		errc <- err
	}()
	pctx := <-p.gotCtx
	if _, ok := pctx.Deadline(); !ok {
		t.Error("the plugin's ctx has no deadline")
	}
	<-pctx.Done() // the plugin sees the caller's deadline pass
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Handle err = %v, want context.DeadlineExceeded", err)
	}
}

func TestCloseCalledAndNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := newProbe()
	t.Run("run", func(t *testing.T) {
		rp := sdktest.Start(t, p, nil)
		if _, err := rp.Handle(t.Context(), &sdk.HandleRequest{Action: "echo"}); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-p.closed:
	default:
		t.Error("Close was not called when the test ended")
	}
}
