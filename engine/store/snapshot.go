package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// snapshotVersion tags the encoding of a Memory's snapshot, so that a
// daemon never restores a state it would read wrong.
const snapshotVersion = 1

// memorySnapshot is a Memory's whole state. Its maps are encoded in key
// order, so that two stores in the same state give the same bytes.
type memorySnapshot struct {
	Version   int                          `json:"v"`
	NextID    uint64                       `json:"next_id"`
	Accounts  map[string]Account           `json:"accounts,omitempty"`
	Sessions  map[string]SessionState      `json:"sessions,omitempty"`
	Leases    map[string]Lease             `json:"leases,omitempty"`
	Cursors   map[string]string            `json:"cursors,omitempty"`
	Seen      map[string][]byte            `json:"seen,omitempty"` // packed by packSeen
	Outbox    []Item                       `json:"outbox,omitempty"`
	Dead      []DeadLetter                 `json:"dead,omitempty"`
	Inbound   []InboundDeadLetter          `json:"inbound,omitempty"`
	Cooldowns map[string]CooldownMark      `json:"cooldowns,omitempty"`
	Pauses    map[string]Pause             `json:"pauses,omitempty"`
	KV        map[string]map[string][]byte `json:"kv,omitempty"`
	Log       map[string][]LoggedMessage   `json:"log,omitempty"`
}

// Snapshot encodes m's whole state, for a store that replays an event log
// to start from it instead of the log's beginning. Restore reads it back.
// The bounds and the clock are not part of it: they are the options of
// the store restoring it.
func (m *Memory) Snapshot() ([]byte, error) {
	m.mu.Lock()
	snap := memorySnapshot{
		Version: snapshotVersion, NextID: m.nextID, Accounts: m.accounts, Sessions: m.sessions, Leases: m.leases,
		Cursors: m.cursors, Seen: make(map[string][]byte, len(m.seen)), Outbox: m.sortedOutbox(),
		Inbound: m.inbound, Cooldowns: m.cooldowns, Pauses: m.pauses, KV: m.kv, Log: m.log,
	}
	for account, s := range m.seen {
		snap.Seen[account] = packSeen(s.order[s.head:])
	}
	ids := slices.Sorted(maps.Keys(m.dead))
	for _, id := range ids {
		snap.Dead = append(snap.Dead, m.dead[id])
	}
	// Encoded under the lock: the maps are m's own.
	data, err := json.Marshal(snap)
	m.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	return data, nil
}

// Restore replaces m's whole state with the one data, made by Snapshot,
// holds. It is atomic: when data cannot be read, m is left as it was.
func (m *Memory) Restore(data []byte) error {
	var snap memorySnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("store: restore snapshot: %w", err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("store: restore snapshot: version %d, this build reads %d", snap.Version, snapshotVersion)
	}
	fresh := NewMemory(m.opts)
	fresh.nextID = snap.NextID
	maps.Copy(fresh.accounts, snap.Accounts)
	maps.Copy(fresh.sessions, snap.Sessions)
	maps.Copy(fresh.leases, snap.Leases)
	maps.Copy(fresh.cursors, snap.Cursors)
	for account, packed := range snap.Seen {
		marks, err := unpackSeen(packed)
		if err != nil {
			return fmt.Errorf("store: restore snapshot: seen ids of %s: %w", account, err)
		}
		s := &seenIDs{at: make(map[uint64]int64, len(marks)), order: marks}
		for _, mk := range marks {
			s.at[mk.ID] = mk.At
		}
		fresh.seen[account] = s
	}
	for _, it := range snap.Outbox {
		fresh.outbox[it.ID] = it
	}
	for _, d := range snap.Dead {
		fresh.dead[d.Item.ID] = d
	}
	fresh.inbound = snap.Inbound
	maps.Copy(fresh.cooldowns, snap.Cooldowns)
	maps.Copy(fresh.pauses, snap.Pauses)
	maps.Copy(fresh.kv, snap.KV)
	maps.Copy(fresh.log, snap.Log)
	m.mu.Lock()
	m.accounts, m.sessions, m.leases, m.cursors, m.seen = fresh.accounts, fresh.sessions, fresh.leases, fresh.cursors, fresh.seen
	m.outbox, m.nextID, m.dead, m.inbound = fresh.outbox, fresh.nextID, fresh.dead, fresh.inbound
	m.cooldowns, m.pauses, m.kv, m.log = fresh.cooldowns, fresh.pauses, fresh.kv, fresh.log
	m.mu.Unlock()
	return nil
}

// packSeen encodes marks, oldest first, as varints: each time as the
// difference from the one before (a page's ids share theirs), then the id.
// An account's seen ids are most of a snapshot, and JSON numbers would make
// it several times larger and slower to read.
func packSeen(marks []seenMark) []byte {
	out := make([]byte, 0, len(marks)*10)
	var prev int64
	for _, mk := range marks {
		out = binary.AppendVarint(out, mk.At-prev)
		out = binary.AppendUvarint(out, mk.ID)
		prev = mk.At
	}
	return out
}

// unpackSeen decodes what packSeen encoded.
func unpackSeen(data []byte) ([]seenMark, error) {
	var out []seenMark
	var prev int64
	for len(data) > 0 {
		d, n := binary.Varint(data)
		if n <= 0 {
			return nil, errors.New("a damaged time")
		}
		id, m := binary.Uvarint(data[n:])
		if m <= 0 {
			return nil, errors.New("a damaged id")
		}
		data = data[n+m:]
		prev += d
		out = append(out, seenMark{At: prev, ID: id})
	}
	return out, nil
}
