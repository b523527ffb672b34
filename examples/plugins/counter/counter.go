package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/finderbot/finderbot/sdk"
)

// counter keeps one count per (account, sender) under "count/<account>/<sender>".
// The daemon runs one counter process, so the mutex is enough to make the
// read-increment-write of a count atomic.
type counter struct {
	mu sync.Mutex
}

var _ sdk.Plugin = (*counter)(nil)

func (c *counter) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name:        "counter",
		Version:     "1.0.0",
		Description: "Counts each user's messages in the daemon's store and answers with the count.",
		Actions: []sdk.Action{
			{
				Name:        "count",
				Description: "Add one to the sender's count and reply with it.",
				Params: []sdk.Param{{
					Name:        "reply",
					Description: "the reply; {n} becomes the count. Empty: count without replying",
					Default:     "这是您第 {n} 条消息。",
				}},
			},
			{
				Name:        "reset",
				Description: "Forget the sender's count.",
			},
			{
				Name:        "report",
				Description: "Send a summary of the account's counts, for example from a cron schedule.",
				Params: []sdk.Param{{
					Name:        "to",
					Description: "the user name (wxid) to send the summary to",
					Required:    true,
				}},
			},
		},
	}, nil
}

func (c *counter) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	switch req.Action {
	case "count":
		key, err := senderKey(req)
		if err != nil {
			return nil, err
		}
		n, err := c.increment(ctx, req.Host, key)
		if err != nil {
			return nil, err
		}
		reply := req.Param("reply")
		if reply == "" {
			return &sdk.HandleResponse{}, nil
		}
		return sdk.TextReply(strings.ReplaceAll(reply, "{n}", strconv.Itoa(n))), nil
	case "reset":
		key, err := senderKey(req)
		if err != nil {
			return nil, err
		}
		return &sdk.HandleResponse{}, req.Host.Delete(ctx, key)
	case "report":
		users, total, err := c.summary(ctx, req.Host, req.Account)
		if err != nil {
			return nil, err
		}
		text := fmt.Sprintf("%s: %d users sent %d messages", req.Account, users, total)
		return &sdk.HandleResponse{Sends: []sdk.Send{{To: req.Param("to"), Text: text}}}, nil
	}
	return nil, fmt.Errorf("counter: unknown action %q", req.Action)
}

func senderKey(req *sdk.HandleRequest) (string, error) {
	if req.Message == nil || req.Message.From == "" {
		return "", errors.New("counter: the action needs a message with a sender; use it in a message rule, not a cron schedule")
	}
	return "count/" + req.Account + "/" + req.Message.From, nil
}

func (c *counter) increment(ctx context.Context, h sdk.Host, key string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := get(ctx, h, key)
	if err != nil {
		return 0, err
	}
	n++
	if err := h.Put(ctx, key, []byte(strconv.Itoa(n))); err != nil {
		return 0, err
	}
	return n, nil
}

func (c *counter) summary(ctx context.Context, h sdk.Host, account string) (users, total int, err error) {
	keys, err := h.Keys(ctx, "count/"+account+"/")
	if err != nil {
		return 0, 0, err
	}
	for _, k := range keys {
		n, err := get(ctx, h, k)
		if err != nil {
			return 0, 0, err
		}
		users++
		total += n
	}
	return users, total, nil
}

func get(ctx context.Context, h sdk.Host, key string) (int, error) {
	v, ok, err := h.Get(ctx, key)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("counter: %s holds %q, not a count: %w", key, v, err)
	}
	return n, nil
}
