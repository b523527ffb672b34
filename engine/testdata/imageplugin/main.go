// Command imageplugin answers each message with an image whose URL names
// its text: the image reply of a plugin, for the daemon's tests. The text
// "bad" gets an image that is not an http(s) URL.
package main

import (
	"context"

	"github.com/finderbot/finderbot/sdk"
)

type picture struct{}

func (picture) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "imageplugin", Version: "1.0.0", Description: "Answers with an image.",
		Actions: []sdk.Action{{Name: "picture", Description: "Reply with the image of the text."}}}, nil
}

func (picture) Handle(_ context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Message == nil {
		return &sdk.HandleResponse{}, nil
	}
	if req.Message.Text == "picture bad" {
		return sdk.ImageReply("ftp://img.example.com/bad.png"), nil
	}
	return sdk.ImageReply("https://img.example.com/" + req.Message.Text + ".png"), nil
}

func main() { sdk.Serve(picture{}) }
