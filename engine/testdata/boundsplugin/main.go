// Command boundsplugin is the plugin of the daemon's bounds tests: its send
// action hands the daemon texts one byte past their bounds through Host and
// replies with what the daemon answered; its flood action writes a thousand
// lines to standard output at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/finderbot/finderbot/sdk"
)

type bounds struct{}

func (bounds) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "boundsplugin", Version: "1.0.0", Description: "Goes past the bounds.",
		Actions: []sdk.Action{{Name: "send"}, {Name: "flood"}}}, nil
}

func (bounds) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	switch req.Action {
	case "send":
		long := strings.Repeat("x", sdk.MaxResponseText+1)
		var out []string
		for what, err := range map[string]error{
			"text":  req.Host.Send(ctx, sdk.Send{To: "wxid_friend", Text: long}),
			"to":    req.Host.Send(ctx, sdk.Send{To: long, Text: "hi"}),
			"key":   req.Host.Put(ctx, long, []byte("v")),
			"value": req.Host.Put(ctx, "k", []byte(long)),
		} {
			out = append(out, fmt.Sprintf("%s: %v", what, err))
		}
		return sdk.TextReply(strings.Join(out, "\n")), nil
	case "flood":
		for i := range 1000 {
			fmt.Fprintf(os.Stdout, "flood %d\n", i)
		}
		return sdk.TextReply("flooded"), nil
	}
	return nil, errors.New("unknown action")
}

func main() { sdk.Serve(bounds{}) }
