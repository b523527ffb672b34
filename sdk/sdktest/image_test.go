package sdktest_test

import (
	"context"
	"testing"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

type imager struct{}

func (imager) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "imager", Actions: []sdk.Action{{Name: "show"}}}, nil
}

func (imager) Handle(context.Context, *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	resp := sdk.ImageReply("https://static.example.com/price-list.png")
	resp.Replies = append(resp.Replies, sdk.Reply{Text: "价格表"})
	return resp, nil
}

// TestImageReplyCrossesTheProtocol: an image reply reaches the daemon's
// side with its URL, beside a text reply, in order.
func TestImageReplyCrossesTheProtocol(t *testing.T) {
	t.Parallel()
	p := sdktest.Start(t, imager{}, nil)
	resp, err := p.Handle(t.Context(), &sdk.HandleRequest{Action: "show", Message: sdktest.Text("价格表")})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Replies) != 2 || resp.Replies[0].Image != "https://static.example.com/price-list.png" || resp.Replies[0].Text != "" || resp.Replies[1].Text != "价格表" {
		t.Fatalf("replies %+v", resp.Replies)
	}
}
