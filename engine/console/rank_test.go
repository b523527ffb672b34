package console

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRankedHeapKeepsTheFirst: the accounts the Overview picks in one pass
// are exactly the first of a full sort, in its order, whatever the ranks
// (many equal), the names (some equal) and the number kept.
func TestRankedHeapKeepsTheFirst(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := rng.IntN(300)
		accounts := make([]Account, n)
		for i := range accounts {
			accounts[i] = Account{Name: fmt.Sprintf("a%03d", rng.IntN(n+1)), State: "online"}
			switch rng.IntN(10) {
			case 0:
				accounts[i].State = "backing_off"
			case 1:
				accounts[i].DeadLetters = rng.IntN(3)
			case 2:
				accounts[i].Outbox = rng.IntN(5)
			}
		}
		all := make([]ranked, n)
		for i := range accounts {
			all[i] = ranked{&accounts[i], attention(accounts[i])}
		}
		keep := rng.IntN(120)
		var h rankedHeap
		for _, r := range all {
			h.offer(r, keep)
		}
		slices.SortFunc(h, func(a, b ranked) int { return b.order(a) })
		slices.SortStableFunc(all, func(a, b ranked) int { return b.order(a) })
		want := all[:min(keep, n)]
		if len(h) != len(want) {
			t.Fatalf("trial %d: kept %d of %d, want %d", trial, len(h), n, len(want))
		}
		for i := range want {
			// Equal names and ranks may come in either order: compare what
			// the page shows.
			if h[i].rank != want[i].rank || h[i].a.Name != want[i].a.Name {
				t.Fatalf("trial %d (%d accounts, keep %d): row %d is %s/%d, want %s/%d", trial, n, keep, i, h[i].a.Name, h[i].rank, want[i].a.Name, want[i].rank)
			}
		}
	}
}
