package rules

import (
	"sync"
	"sync/atomic"
)

// Stats counts, per rule name, the evaluations whose condition held and
// those that failed. Give the same Stats to every compilation of a rule
// set (Options.Stats) and a rule keeps its counts across reloads: they
// run from the Stats' creation. Counting is two atomic additions at most
// per evaluation, and never allocates.
type Stats struct {
	mu     sync.Mutex
	byName map[string]*ruleCounts
}

type ruleCounts struct {
	matches, failures atomic.Uint64
}

// NewStats returns empty counts.
func NewStats() *Stats { return &Stats{byName: map[string]*ruleCounts{}} }

// counts returns the counters of the named rule, creating them. It runs
// when a set is compiled, never during an evaluation.
func (s *Stats) counts(name string) *ruleCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.byName[name]
	if c == nil {
		c = &ruleCounts{}
		s.byName[name] = c
	}
	return c
}

// RuleStat is one rule's counts, for status pages.
type RuleStat struct {
	// Name, File and Line identify the rule.
	Name string `json:"name"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Kind is the rule's trigger: "message", "event" or "cron".
	Kind string `json:"kind"`
	// Matches counts the evaluations whose condition held, including
	// those a cooldown then kept from acting (as Trace.Matched).
	Matches uint64 `json:"matches"`
	// Failures counts the evaluations that failed: the condition or an
	// action's template could not be evaluated (see Options.OnFailure).
	Failures uint64 `json:"failures"`
}

// Stats returns the counts of every rule of the set, in evaluation order:
// those of the Stats it was compiled with, zero without one. Explain
// counts nothing; Match, MatchEvent and Fire do.
func (s *Set) Stats() []RuleStat {
	out := make([]RuleStat, len(s.all))
	for i, r := range s.all {
		out[i] = RuleStat{Name: r.Name, File: r.File, Line: r.Line, Kind: string(r.Trigger)}
		if r.counts != nil {
			out[i].Matches, out[i].Failures = r.counts.matches.Load(), r.counts.failures.Load()
		}
	}
	return out
}
