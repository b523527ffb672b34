// Command soakplugin is the plugin of the chaos soak: it answers "ok <text>"
// and crashes its process on any text containing "boom".
package main

import (
	"context"
	"os"
	"strings"

	"github.com/finderbot/finderbot/sdk"
)

type soak struct{}

func (soak) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "soakplugin", Version: "1.0.0", Description: "Echoes, and crashes on boom.",
		Actions: []sdk.Action{{Name: "echo", Description: "Reply ok <text>; crash on boom."}}}, nil
}

func (soak) Handle(_ context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Message == nil {
		return &sdk.HandleResponse{}, nil
	}
	if strings.Contains(req.Message.Text, "boom") {
		os.Exit(3)
	}
	return sdk.TextReply("ok " + req.Message.Text), nil
}

func main() { sdk.Serve(soak{}) }
