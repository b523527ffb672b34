package engine

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/finderbot/finderbot/engine/store"
)

// countingStore counts the reads of the dead letters, and fails them on
// demand.
type countingStore struct {
	store.Store
	reads int
	fail  bool
}

func (s *countingStore) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	s.reads++
	if s.fail {
		return nil, errors.New("disk on fire")
	}
	return s.Store.DeadLetters(ctx, limit)
}

// TestDeadLetterCountsReadOnlyAfterAChange: the counts are read once, then
// served without reading until a change is reported, and then show it; a
// store that cannot be read leaves the last counts.
func TestDeadLetterCountsReadOnlyAfterAChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &countingStore{Store: store.NewMemory(store.Options{})}
	bury := func(account string) {
		t.Helper()
		res, err := st.Record(ctx, store.Changes{Add: []store.Item{{Account: account, Kind: store.KindReply, Text: "你好"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Record(ctx, store.Changes{Dead: []store.DeadLetter{{Item: res.Added[0], Reason: "refused"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var c deadLetterCounts
	check := func(want map[string]int, reads int) {
		t.Helper()
		if got := c.get(ctx, st); !maps.Equal(got, want) || st.reads != reads {
			t.Fatalf("counts %v after %d reads; want %v after %d", got, st.reads, want, reads)
		}
	}
	check(map[string]int{}, 1)
	check(map[string]int{}, 1)
	bury("shop")
	check(map[string]int{}, 1) // not told yet
	c.changed()
	check(map[string]int{"shop": 1}, 2)
	for range 100 {
		check(map[string]int{"shop": 1}, 2)
	}
	bury("shop")
	bury("home")
	c.changed()
	check(map[string]int{"shop": 2, "home": 1}, 3)
	st.fail = true
	c.changed()
	check(map[string]int{"shop": 2, "home": 1}, 4)
	st.fail = false
	check(map[string]int{"shop": 2, "home": 1}, 5) // read again: the last read failed
	check(map[string]int{"shop": 2, "home": 1}, 5)
}
