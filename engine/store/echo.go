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
//     in the order they were sent. An image echo carries the upstream's
//     <img> XML rather than the URL sent, so it stands for "an image" and
//     settles the oldest unsettled image reply of its conversation by the
//     same order; a text echo never settles an image reply, nor an image
//     echo a text one.
//
// Echoes that settle nothing (a message the operator typed on the phone)
// are ignored.
func MatchEchoes(cands []Item, echoes []Echo) []uint64 {
	settled, _ := ClassifyEchoes(cands, echoes)
	return settled
}

// ClassifyEchoes is MatchEchoes that also returns the indexes, in echoes,
// of the echoes that settle nothing: the account's own messages that no
// send of finderbot's accounts for, written by a person on the phone (or
// another client). Takeover detection rests on it, so that it can never
// take a reply of the bot for a person's.
func ClassifyEchoes(cands []Item, echoes []Echo) (settled []uint64, foreign []int) {
	if len(echoes) == 0 {
		return nil, nil
	}
	if len(cands) == 0 {
		foreign = make([]int, len(echoes))
		for i := range foreign {
			foreign[i] = i
		}
		return nil, foreign
	}
	done := make([]bool, len(cands))
	used := make([]bool, len(echoes))
	for j, e := range echoes {
		for i := range cands {
			if !done[i] && cands[i].NewMsgID != 0 && cands[i].NewMsgID == e.ID {
				done[i], used[j] = true, true
				settled = append(settled, cands[i].ID)
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
			if done[i] || c.Kind != KindReply || c.State == StateDelivered || !c.State.Attempted() {
				continue
			}
			if (c.Image != "") != e.Image || (!e.Image && c.Text != e.Text) || c.To != e.To || (c.My != "" && e.From != "" && c.My != e.From) ||
				(c.Session != "" && e.Session != "" && c.Session != e.Session) {
				continue
			}
			if !e.Time.IsZero() && !c.AttemptAt.IsZero() && e.Time.Before(c.AttemptAt.Add(-EchoSlack)) {
				continue
			}
			done[i], used[j] = true, true
			settled = append(settled, c.ID)
			break
		}
	}
	for j := range echoes {
		if !used[j] {
			foreign = append(foreign, j)
		}
	}
	return settled, foreign
}
