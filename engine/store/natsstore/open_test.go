package natsstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store/natsstore"
)

// TestDaemonsOpenTogether: daemons starting at once all open the stream.
func TestDaemonsOpenTogether(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, 3)
	var wg sync.WaitGroup
	for range 3 {
		nc := c.Connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := natsstore.Open(context.Background(), nc, natsstore.Options{Stream: "FB", Replicas: 3}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
