package dst

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/finderbot/finderbot/engine/upstream"
)

const endpointSync = "/syncFinder"

// SyncFinder serves the next page of account wID's log after keyBuff (""
// for the start): between 1 and Faults.MaxPage messages, the rng picks,
// rendered as the JSON of a real page and decoded by upstream.DecodePage. Any
// keyBuff this Upstream issued for wID is accepted; any other is refused
// (code "1001"), and an unknown wID is refused as offline. token is not
// checked.
func (u *Upstream) SyncFinder(ctx context.Context, token, wID, keyBuff string) (*upstream.Page, error) {
	c := Call{Endpoint: endpointSync, WID: wID, Time: u.clock.Now()}
	p, err := u.syncFinder(ctx, wID, keyBuff, &c)
	u.record(c, err)
	return p, err
}

func (u *Upstream) syncFinder(ctx context.Context, wID, keyBuff string, c *Call) (*upstream.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, transportError(endpointSync, false, err)
	}
	a := u.accounts[wID]
	if a == nil {
		return nil, offline(endpointSync)
	}
	cursor, ok := decodeKeyBuff(wID, keyBuff, len(a.log))
	if !ok {
		return nil, refusal(endpointSync, msgBadKeyBuff)
	}
	shape := u.drawSync()
	if shape == ShapeSyncTransport {
		c.Shapes = append(c.Shapes, shape)
		if u.rng.IntN(2) == 0 {
			return nil, transportError(endpointSync, false, errDialRefused)
		}
		return nil, cutBody(endpointSync)
	}

	n := 1 + u.rng.IntN(u.faults.maxPage())
	s := span{cursor, min(cursor+n, len(a.log))}
	next := s.end
	switch shape {
	case ShapeRepeat:
		next = cursor
	case ShapeReplay:
		var older []span
		for _, p := range a.served {
			if p.end <= cursor {
				older = append(older, p)
			}
		}
		if len(older) == 0 {
			shape = ""
			break
		}
		s = older[u.rng.IntN(len(older))]
		next = s.end
	}
	if shape != "" {
		c.Shapes = append(c.Shapes, shape)
	}
	if shape != ShapeReplay && s.end > s.start {
		a.served = append(a.served, s)
		if len(a.served) > maxServed {
			a.served = slices.Delete(a.served, 0, len(a.served)-maxServed)
		}
	}

	items := make([][]byte, 0, s.end-s.start+3)
	for _, e := range a.log[s.start:s.end] {
		items = append(items, e.item)
	}
	if len(items) > 0 && u.rng.Float64() < u.faults.Duplicate {
		c.Shapes = append(c.Shapes, ShapeDuplicate)
		i := u.rng.IntN(len(items))
		items = slices.Insert(items, i+1, items[i])
	}
	now := u.clock.Now().Unix()
	if u.rng.Float64() < u.faults.JunkNoID {
		c.Shapes = append(c.Shapes, ShapeJunkNoID)
		items = slices.Insert(items, u.rng.IntN(len(items)+1), junkItem(a.finder, now, nil))
	}
	if u.rng.Float64() < u.faults.JunkBadID {
		c.Shapes = append(c.Shapes, ShapeJunkBadID)
		items = slices.Insert(items, u.rng.IntN(len(items)+1), junkItem(a.finder, now, json.RawMessage(`"x"`)))
	}

	data := renderPage(items, encodeKeyBuff(wID, next))
	u.lastData = data
	p, err := upstream.DecodePage(data)
	if err != nil {
		// The real client's words for a page upstream.DecodePage refuses.
		return nil, &upstream.MalformedError{Endpoint: endpointSync, Reason: "data is not a page", Err: err}
	}
	return p, nil
}
