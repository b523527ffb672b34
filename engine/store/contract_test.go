package store_test

import (
	"testing"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/store/storetest"
)

// TestContract runs the store contract against the bbolt store and the
// in-memory one.
func TestContract(t *testing.T) {
	t.Parallel()
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T, opts store.Options) storetest.Opener {
			dir := t.TempDir()
			return storetest.Opener{Persistent: true, Open: func(t *testing.T) store.Store {
				s, err := store.Open(dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}}
		})
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T, opts store.Options) storetest.Opener {
			s := store.NewMemory(opts)
			return storetest.Opener{Open: func(*testing.T) store.Store { return s }}
		})
	})
}
