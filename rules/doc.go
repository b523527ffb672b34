// Package rules is finderbot's rule language: YAML files of rules whose
// conditions are expr (https://expr-lang.org) expressions and whose actions
// are templated replies, sends and plugin calls.
//
// Load reads and compiles rule files into an immutable *Set. A Set is safe
// for concurrent use, so a daemon can build a new one on reload and swap it in
// atomically. Every problem found while loading is reported at once, as a
// *LoadError whose problems carry file:line:col, the rule's name and a caret
// under the bad part of the expression.
//
// A Set answers three questions:
//
//   - Match: which message rules fire for this message, and with which
//     rendered actions. An index over the constraints each condition places
//     on the message, its account and the clock means a message is only
//     checked against the rules that could match it, each first by the
//     parts of its condition Go decides without expr's VM.
//   - MatchEvent: which event rules fire for a session event.
//   - Fire: what a cron rule does when its schedule comes due.
//
// Per-conversation cooldowns live in a *Cooldowns kept outside the Set, so
// they survive a reload. Time is always passed in; nothing in this package
// reads the wall clock.
//
// RunTests runs *_test.yaml rule tests, and Replay runs a recorded
// /syncFinder page through a Set.
package rules
