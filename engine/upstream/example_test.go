package upstream_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// Example logs a WeChat account in against the simulator, syncs its Finder
// messages and answers the stranger's "哈喽".
func Example() {
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	defer srv.Close()
	ctx := context.Background()
	c, err := upstream.New(srv.URL)
	if err != nil {
		panic(err)
	}

	member, err := c.MemberLogin(ctx, sim.DefaultAccount, sim.DefaultPassword)
	if err != nil {
		panic(err)
	}
	qr, err := c.IPadLogin(ctx, member.Token, upstream.IPadLoginRequest{DeviceType: upstream.DeviceIPad, Proxy: 3})
	if err != nil {
		panic(err)
	}
	out, err := c.GetIPadLoginInfo(ctx, member.Token, upstream.LoginInfoRequest{WID: qr.WID})
	if err != nil {
		panic(err)
	}
	switch o := out.(type) {
	case *upstream.SliderRequired:
		fmt.Println("solve the slider at", o.URL)
		return
	case *upstream.VerifyCodeRequired:
		fmt.Println("enter the code shown on the phone:", o.Message)
		return
	case *upstream.LoggedIn:
		fmt.Println("logged in:", o.WID == qr.WID)
	}

	page, err := c.SyncFinder(ctx, member.Token, qr.WID, "")
	if err != nil {
		panic(err)
	}
	fmt.Println("messages:", len(page.Messages), "keyBuff:", page.KeyBuff == sim.SeedKeyBuff)
	for _, m := range page.Messages {
		if m.Text == "哈喽" && !m.FromSelf {
			sent, err := c.PrivateSend(ctx, member.Token, upstream.ReplyTo(qr.WID, &m, "你好!"))
			if err != nil {
				panic(err)
			}
			fmt.Println("answered", m.ID, "with a message id above 2^53:", sent.NewMsgID > 1<<53)
		}
	}

	// Offline is recognisable: the caller logs in again instead of retrying.
	_ = srv.Kick(qr.WID)
	_, err = c.SyncFinder(ctx, member.Token, qr.WID, page.KeyBuff)
	fmt.Println("offline:", errors.Is(err, upstream.ErrOffline), "retryable:", upstream.Retryable(err))
	// Output:
	// logged in: true
	// messages: 19 keyBuff: true
	// answered 1767797523284146072 with a message id above 2^53: true
	// offline: true retryable: false
}
