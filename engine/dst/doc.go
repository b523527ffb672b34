// Package dst is the upstream and the clock of finderbot's deterministic
// simulation tests, in the spirit of FoundationDB's simulator and
// TigerBeetle's VOPR: the daemon's real poller, outbox, rules and store run
// single-threaded against Upstream, an in-memory model of the wkteam Finder
// API, on a virtual Clock, and a seeded *rand.Rand decides every fault.
//
// The model is deliberately single-threaded and has no goroutines, no maps
// iterated for output and no wall clock, so one seed and one sequence of
// calls always give byte-identical pages, answers and errors: a failing
// seed is a one-line reproduction.
//
// Upstream answers with the real types of package upstream (its errors
// included) and renders every /syncFinder page as JSON that the real
// decoder, upstream.DecodePage, decodes; the faults are the shapes the real
// client can see, each documented on Faults with whether the upstream
// accepted the send.
package dst
