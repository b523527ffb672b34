package dst

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		f    Faults
		want string // "" for valid
	}{
		"zero":             {Faults{}, ""},
		"every send once":  {Faults{Refuse: .1, Offline: .1, Unwritten: .1, Cut: .1, Malformed: .1, Late: .1, Dropped: .1, Status502Accepted: .1, Status502Lost: .1}, ""},
		"sends sum to one": {Faults{Refuse: .5, Cut: .5}, ""},
		"sync shapes":      {Faults{SyncTransport: .2, Repeat: .3, Replay: .5, Duplicate: 1, JunkNoID: 1, JunkBadID: 1}, ""},
		"negative":         {Faults{Cut: -.1}, "Cut is -0.1"},
		"above one":        {Faults{Duplicate: 1.5}, "Duplicate is 1.5"},
		"not a number":     {Faults{Late: math.NaN()}, "Late is NaN"},
		"sends over one":   {Faults{Refuse: .6, Late: .6}, "send shapes sum"},
		"syncs over one":   {Faults{Repeat: .6, Replay: .6}, "Replay sum"},
		"negative page":    {Faults{MaxPage: -1}, "MaxPage"},
		"negative timeout": {Faults{CallTimeout: -time.Second}, "CallTimeout"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := tt.f.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestInvalidFaultsPanic(t *testing.T) {
	t.Parallel()
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	panics("NewUpstream", func() { NewUpstream(rng, NewClock(), Faults{Cut: 2}) })
	panics("NewUpstream without a clock", func() { NewUpstream(rng, nil, Faults{}) })
	u := NewUpstream(rng, NewClock(), Faults{})
	panics("SetFaults", func() { u.SetFaults(Faults{Repeat: -1}) })
	panics("Inject to an unknown account", func() { u.Inject("nobody", Incoming{Text: "hi"}) })
	u.AddAccount("w", "f@finder")
	panics("AddAccount twice", func() { u.AddAccount("w", "f@finder") })
}
