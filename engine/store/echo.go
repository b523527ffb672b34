package store

import "time"

// EchoSlack is how much earlier than its reply's attempt an echo's
// CreateTime may read and still settle it: the upstream stamps whole seconds
// with a clock of its own.
const EchoSlack = 5 * time.Minute

// MatchEchoes decides which of an account's attempted outbox items (states
// attempting, in doubt and delivered, in ID order) the page's echoes (the
// account's own new messages, in page order) prove delivered, and returns
// their ids.
//
// An echo settles:
//  1. the item the upstream answered with the echo's id (NewMsgID), when the
//     answer arrived; such an echo settles nothing else, so the echo of a
//     delivered "收到" can never be credited to another "收到" in doubt;
//  2. otherwise the oldest unsettled reply in doubt or in flight of the same
//     conversation (receiver and session), the same Finder identity and the
//     same text whose attempt began before the echo was written. With k
//     equal replies pending and j such echoes, exactly the j oldest are
//     settled, since replies of one conversation are accepted, and echoed,
//     in the order they were sent.
//
// Echoes that settle nothing (a message the operator typed on the phone)
// are ignored.
func MatchEchoes(cands []Item, echoes []Echo) []uint64 {
	if len(cands) == 0 || len(echoes) == 0 {
		return nil
	}
	settled := make([]bool, len(cands))
	used := make([]bool, len(echoes))
	var out []uint64
	for j, e := range echoes {
		for i := range cands {
			if !settled[i] && cands[i].NewMsgID != 0 && cands[i].NewMsgID == e.ID {
				settled[i], used[j] = true, true
				out = append(out, cands[i].ID)
				break
			}
		}
	}
	for j, e := range echoes {
		if used[j] {
			continue
		}
		for i := range cands {
			c := &cands[i]
			if settled[i] || c.Kind != KindReply || c.State == StateDelivered || !c.State.Attempted() {
				continue
			}
			if c.Text != e.Text || c.To != e.To || (c.My != "" && e.From != "" && c.My != e.From) ||
				(c.Session != "" && e.Session != "" && c.Session != e.Session) {
				continue
			}
			if !e.Time.IsZero() && !c.AttemptAt.IsZero() && e.Time.Before(c.AttemptAt.Add(-EchoSlack)) {
				continue
			}
			settled[i] = true
			out = append(out, c.ID)
			break
		}
	}
	return out
}
