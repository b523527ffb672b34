package console

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// fleetBackend is a Backend whose Overview holds n accounts, a few of them
// needing a person, copied afresh for each call as the daemon builds it.
type fleetBackend struct {
	*fake
	accounts []Account
}

func newFleetBackend(n int) *fleetBackend {
	m := &fleetBackend{fake: newFake()}
	for i := range n {
		a := Account{Name: fmt.Sprintf("shop-%05d", i), State: "online", WcID: fmt.Sprintf("wxid_shop%05d", i),
			LastSync: t0.Add(-time.Duration(i%60) * time.Second), InPerMin: float64(i % 7)}
		switch i % 97 {
		case 0:
			a.State, a.Detail = "backing_off", "login failed: the upstream refused the password"
		case 1:
			a.DeadLetters, a.Outbox = 2, 5
		}
		m.accounts = append(m.accounts, a)
	}
	return m
}

func (m *fleetBackend) Overview(context.Context) Overview {
	return Overview{Started: t0, Accounts: slices.Clone(m.accounts)}
}

// BenchmarkOverviewFragment serves the Overview's live fragment, which the
// page fetches at each change, over 10,000 accounts: the console's own
// share of the serve time.
func BenchmarkOverviewFragment(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprint("accounts=", n), func(b *testing.B) {
			h := New(newFleetBackend(n), Options{Loopback: true})
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/fragments/overview", nil)
				r.Host, r.RemoteAddr = "127.0.0.1:9090", "127.0.0.1:40000"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
