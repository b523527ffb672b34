package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// flood answers each action with what its name asks for, to go past the
// bounds on plugin answers.
type flood struct{}

func (flood) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "flood", Actions: make([]sdk.Action, sdk.MaxActions+1)}, nil
}

func (flood) Handle(_ context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	switch req.Action {
	case "many":
		return &sdk.HandleResponse{Replies: make([]sdk.Reply, sdk.MaxResponseMessages/2+1), Sends: make([]sdk.Send, sdk.MaxResponseMessages/2)}, nil
	case "most":
		return &sdk.HandleResponse{Replies: make([]sdk.Reply, sdk.MaxResponseMessages)}, nil
	case "long":
		return &sdk.HandleResponse{Sends: []sdk.Send{{To: "x", Text: strings.Repeat("x", sdk.MaxResponseText+1)}}}, nil
	case "far":
		return &sdk.HandleResponse{Sends: []sdk.Send{{To: strings.Repeat("x", sdk.MaxNameBytes+1), Text: "hi"}}}, nil
	case "error":
		return nil, errors.New(strings.Repeat("名", sdk.MaxResponseText))
	case "diagnostics":
		return &sdk.HandleResponse{Diagnostics: make([]sdk.Diagnostic, sdk.MaxDiagnostics+1)}, nil
	case "huge":
		return &sdk.HandleResponse{Replies: []sdk.Reply{{Text: strings.Repeat("x", sdk.MaxResponseBytes)}}}, nil
	}
	return nil, errors.New("unknown action")
}

func TestAnswerBounds(t *testing.T) {
	t.Parallel()
	rp := sdktest.Start(t, flood{}, nil)
	ctx := context.Background()
	if _, err := rp.Describe(ctx, &sdk.DescribeRequest{}); err == nil || !strings.Contains(err.Error(), "1001 actions, more than the limit of 1000") {
		t.Errorf("Describe past the bound: err = %v", err)
	}
	if resp, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "most"}); err != nil || len(resp.Replies) != sdk.MaxResponseMessages {
		t.Errorf("answer at the bound: %d replies, err = %v", len(resp.Replies), err)
	}
	tests := map[string]string{
		"many":        "answer refused: the plugin answered with 101 replies and sends, more than the limit of 100",
		"long":        "answer refused: send 1: text is 65537 bytes, more than the limit of 65536",
		"far":         "answer refused: send 1: to is 1025 bytes, more than the limit of 1024",
		"diagnostics": "answer refused: the plugin answered with 101 diagnostics, more than the limit of 100",
	}
	for action, want := range tests {
		_, err := rp.Handle(ctx, &sdk.HandleRequest{Action: action})
		var ae *sdk.ActionError
		if !errors.As(err, &ae) || ae.Temporary || err.Error() != want {
			t.Errorf("%s: err = %v, want the action error %q", action, err, want)
		}
	}
	_, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "huge"})
	var ae *sdk.ActionError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "answer refused: grpc: received message larger than max") {
		t.Errorf("huge answer: err = %v", err)
	}
	// An error is kept to MaxErrorText, cut between characters.
	_, err = rp.Handle(ctx, &sdk.HandleRequest{Action: "error"})
	if !errors.As(err, &ae) || len(ae.Message) > sdk.MaxErrorText+100 || !utf8.ValidString(ae.Message) ||
		!strings.HasSuffix(ae.Message, fmt.Sprintf("… (%d more bytes cut)", 3*sdk.MaxResponseText-sdk.MaxErrorText/3*3)) {
		t.Errorf("a long error: %d bytes, ending %q", len(err.Error()), err.Error()[max(0, len(err.Error())-40):])
	}
	// The connection survives all of it.
	if _, err := rp.Handle(ctx, &sdk.HandleRequest{Action: "most"}); err != nil {
		t.Errorf("after the refusals: %v", err)
	}
}
