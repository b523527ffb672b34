package dst

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// finderAPI is the part of *upstream.Client the daemon calls; both the
// real client and the model must have exactly these methods.
type finderAPI interface {
	SyncFinder(ctx context.Context, token, wID, keyBuff string) (*upstream.Page, error)
	PrivateSend(ctx context.Context, token string, req upstream.PrivateSendRequest) (*upstream.Sent, error)
	GetSessionID(ctx context.Context, token string, req upstream.SessionIDRequest) (string, error)
	SendText(ctx context.Context, token string, req upstream.SendTextRequest) (*upstream.Sent, error)
}

var (
	_ finderAPI = (*upstream.Client)(nil)
	_ finderAPI = (*Upstream)(nil)
)

const (
	testWID    = "wid-1"
	testFinder = "v2_060000231003b20faec8test@finder"
	testToken  = "token"
)

func newTestUpstream(seed uint64, f Faults) (*Upstream, *Clock) {
	clock := NewClock()
	u := NewUpstream(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock, f)
	u.AddAccount(testWID, testFinder)
	return u, clock
}

// drain syncs wID from keyBuff until a page brings nothing, and returns
// the messages and the last keyBuff. Faults must be off.
func drain(t *testing.T, u *Upstream, wID, keyBuff string) ([]sdk.Message, string) {
	t.Helper()
	var all []sdk.Message
	for range 10_000 {
		p, err := u.SyncFinder(t.Context(), testToken, wID, keyBuff)
		if err != nil {
			t.Fatalf("SyncFinder: %v", err)
		}
		keyBuff = p.KeyBuff
		if len(p.Messages) == 0 {
			return all, keyBuff
		}
		all = append(all, p.Messages...)
	}
	t.Fatal("SyncFinder never ran dry")
	return nil, ""
}

func ids(msgs []sdk.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].ID
	}
	return out
}
