package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// greeter is a complete plugin: it greets whoever writes, and remembers how
// many times it greeted each of them in the daemon's key-value store.
type greeter struct{}

var _ sdk.Plugin = greeter{}

func (greeter) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name:    "greeter",
		Version: "1.0.0",
		Actions: []sdk.Action{{
			Name:        "greet",
			Description: "Greet the sender by the number of their visit.",
			Params: []sdk.Param{
				{Name: "greeting", Description: "the greeting's first words", Default: "欢迎"},
			},
		}},
	}, nil
}

func (greeter) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Message == nil {
		return nil, errors.New("greeter: greet answers messages, not cron ticks")
	}
	key := "visits/" + req.Message.From
	n := 0
	if v, ok, err := req.Host.Get(ctx, key); err != nil {
		return nil, err
	} else if ok {
		n, _ = strconv.Atoi(string(v))
	}
	n++
	if err := req.Host.Put(ctx, key, []byte(strconv.Itoa(n))); err != nil {
		return nil, err
	}
	return sdk.TextReply(fmt.Sprintf("%s！这是您第 %d 次来访。", req.Param("greeting"), n)), nil
}

// A plugin is a type implementing sdk.Plugin and a main that serves it. The
// daemon starts the binary, asks it to Describe itself, and calls Handle
// for every rule action `plugin: greeter.greet`.
func Example() {
	// In the plugin's main package:
	//
	//	func main() { sdk.Serve(greeter{}) }
	//
	// Here the plugin is called directly, with sdktest's in-memory host
	// standing in for the daemon.
	host := sdktest.NewHost()
	for range 2 {
		resp, err := greeter{}.Handle(context.Background(), &sdk.HandleRequest{
			Action:  "greet",
			Params:  map[string]string{"greeting": "你好"},
			Message: sdktest.Text("在吗"),
			Host:    host,
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(resp.Replies[0].Text)
	}
	// Output:
	// 你好！这是您第 1 次来访。
	// 你好！这是您第 2 次来访。
}

// ticketer opens a support ticket per message, once per action however
// often the daemon retries it.
type ticketer struct{ opened []string }

func (t *ticketer) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	key := "done/" + req.ID
	_, done, err := req.Host.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if !done || req.ID == "" { // "": the caller gave no ID to go by
		t.opened = append(t.opened, req.ID+" "+req.Message.Text) // the effect that must happen once
		if err := req.Host.Put(ctx, key, nil); err != nil {
			return nil, err
		}
	}
	return sdk.TextReply("已为您登记"), nil
}

// The daemon may call Handle again for an action it already performed; the
// retry carries the same ID, which the plugin remembers in its store.
func ExampleHandleRequest_id() {
	host := sdktest.NewHost() // in a plugin: req.Host
	p := &ticketer{}
	for _, id := range []string{"a1", "a1", "a2"} { // a1 is retried once
		resp, err := p.Handle(context.Background(), &sdk.HandleRequest{
			ID: id, Action: "ticket", Message: sdktest.Text("退货"), Host: host,
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(id, resp.Replies[0].Text)
	}
	fmt.Println(p.opened)
	// Output:
	// a1 已为您登记
	// a1 已为您登记
	// a2 已为您登记
	// [a1 退货 a2 退货]
}

func ExampleServe() {
	// A plugin's whole main function:
	sdk.Serve(greeter{})
}

func ExampleTextReply() {
	resp := sdk.TextReply("您好，稍后回复您")
	fmt.Printf("%d reply: %s\n", len(resp.Replies), resp.Replies[0].Text)
	// Output: 1 reply: 您好，稍后回复您
}

// A response can reply to the message, send to others, and tell the operator
// about problems that did not stop the action.
func ExampleHandleResponse() {
	resp := &sdk.HandleResponse{
		Replies: []sdk.Reply{{Text: "已为您转接人工"}},
		Sends:   []sdk.Send{{To: "wxid_support", Text: "有客户需要人工服务"}},
		Diagnostics: []sdk.Diagnostic{{
			Severity: sdk.SeverityWarning,
			Summary:  "the CRM did not answer; used the cached profile",
		}},
	}
	for _, d := range resp.Diagnostics {
		fmt.Println(d.Severity, d.Summary)
	}
	// Output: warning the CRM did not answer; used the cached profile
}

func ExampleRetryLater() {
	// Wrap failures of services the plugin depends on: the daemon keeps
	// the action and tries again later instead of dropping it.
	err := sdk.RetryLater(errors.New("crm: 503 Service Unavailable"))
	fmt.Println(err, sdk.IsTemporary(err))
	fmt.Println(sdk.IsTemporary(errors.New("bad input")))
	// Output:
	// crm: 503 Service Unavailable true
	// false
}

func ExampleNewLogger() {
	host := sdktest.NewHost() // in a plugin: req.Host
	log := sdk.NewLogger(host)
	log.Info("order looked up", "order", "A-1024", "status", "shipped")

	rec := host.Logs()[0]
	fmt.Println(rec.Level, rec.Message, rec.Attrs["order"], rec.Attrs["status"])
	// Output: INFO order looked up A-1024 shipped
}

func ExampleHost_token() {
	// A plugin calling the upstream API itself asks the daemon for the
	// current token of a session each time; the daemon keeps it fresh.
	host := sdktest.NewHost()
	host.SetToken("main", "tok-123")

	var h sdk.Host = host // in a plugin: req.Host
	tok, err := h.Token(context.Background(), "main")
	fmt.Println(tok, err)
	// Output: tok-123 <nil>
}
