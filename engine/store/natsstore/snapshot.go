package natsstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
)

// snapshotRef is a snapshot's part, or the event that ends it. A snapshot
// is the scope's store.Memory state, gzipped, cut into as many messages as
// the message bound asks: Part 0, 1, … then the end, which carries the last
// piece and the count of the parts before it. Each is published as a
// compare-and-set on the one before, so the parts of a snapshot are
// consecutive on the subject and describe the state at the event just
// before the first of them.
type snapshotRef struct {
	ID    string `json:"id"`
	Part  int    `json:"part"`
	Parts int    `json:"parts,omitempty"` // in the end: the parts before it
	// Claimer is the holder of the account's last claim, which the purge
	// takes out of the log: a daemon replaying from the snapshot is fenced
	// as one replaying the claim would be.
	Claimer string `json:"claimer,omitempty"`
	Data    []byte `json:"data"`
}

// SnapshotFailures counts the snapshots (or the purges after them) that
// failed since Open. Such a failure fails no write: the write that
// triggered it was already stored, and the scope's log stays whole until a
// later snapshot succeeds, after as many events again.
func (s *Store) SnapshotFailures() int64 { return s.snapErrs.Load() }

// snapshot publishes sc's state as a snapshot when enough events went into
// sc since its last one, then purges the events before the snapshot, so
// that a replay starts from it. sc.mu is held, right after a write of this
// daemon was applied: the snapshot is fenced like a write (a daemon that
// another one took the account from cannot publish one), and describes
// the state at exactly the sequence of that write. Nor can it mislead a
// writer whose answer was lost, which looks for its own message id on the
// subject's last message: that write's look happened before the snapshot
// began, and the parts carry ids of their own.
func (s *Store) snapshot(ctx context.Context, sc *scope) {
	if s.opts.SnapshotEvery < 0 || sc.fenced || (sc.since < s.opts.SnapshotEvery && sc.sinceBytes < s.opts.SnapshotBytes) {
		return
	}
	// The write is done whatever the caller does now; the snapshot gets
	// its own time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*s.opts.Timeout)
	defer cancel()
	first, err := s.publishSnapshot(ctx, sc)
	if err == nil {
		// Purged up to the first part, which stays: a replay that began
		// before and lost its place to the purge goes on from there.
		err = s.purge(ctx, sc.subject, first)
	}
	if err != nil {
		// Tried again after as many events, not at every write.
		sc.since, sc.sinceBytes = 0, 0
		s.snapErrs.Add(1)
		s.bounds.Log.Warn("natsstore: snapshot failed; the scope keeps its events until the next one", "subject", sc.subject, "err", err)
	}
}

// publishSnapshot publishes sc's state in parts and applies them, as any
// write is applied: the writer restores its own snapshot as a replay will.
// It returns the sequence of the first part.
func (s *Store) publishSnapshot(ctx context.Context, sc *scope) (uint64, error) {
	state, err := sc.mem.Snapshot()
	if err != nil {
		return 0, err
	}
	var zipped bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zipped, gzip.BestSpeed)
	zw.Write(state)
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("natsstore: compress snapshot of %s: %w", sc.subject, err)
	}
	data := zipped.Bytes()
	id := newMsgID()
	var first uint64
	for part := 0; ; part++ {
		piece := data[:min(len(data), s.chunk)]
		data = data[len(piece):]
		ref := &snapshotRef{ID: id, Part: part, Data: piece}
		ev := &event{Op: opSnapPart, Snap: ref}
		if len(data) == 0 {
			ev.Op, ref.Parts, ref.Claimer = opSnapshot, part, sc.claimer
		}
		decoded, seq, size, err := s.send(ctx, sc, ev)
		if err != nil {
			return 0, fmt.Errorf("natsstore: snapshot %s, part %d: %w", sc.subject, part, err)
		}
		if part == 0 {
			first = seq
		}
		if _, err := s.apply(sc, decoded, seq, size); err != nil {
			return 0, err
		}
		if ev.Op == opSnapshot {
			return first, nil
		}
	}
}

// restore replaces sc's state with the snapshot end ends, whose parts
// were the events just before it, and indexes its outbox items.
func (s *Store) restore(sc *scope, end *snapshotRef) error {
	parts := append(sc.parts, end)
	if len(parts) != end.Parts+1 {
		return fmt.Errorf("snapshot %s has %d parts of %d", end.ID, len(parts)-1, end.Parts)
	}
	var zipped []byte
	for i, p := range parts {
		if p.ID != end.ID || p.Part != i {
			return fmt.Errorf("snapshot %s: part %d is part %d of snapshot %s", end.ID, i, p.Part, p.ID)
		}
		zipped = append(zipped, p.Data...)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", end.ID, err)
	}
	state, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", end.ID, err)
	}
	if err := sc.mem.Restore(state); err != nil {
		return err
	}
	sc.gap = false
	// The fence only ever grows here: a daemon following the log already
	// applied the claim, and a restore must not lift a fence it met since.
	if end.Claimer != "" {
		sc.claimer = end.Claimer
		sc.fenced = sc.fenced || end.Claimer != s.opts.Holder
	}
	pending, _ := sc.mem.Pending(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unindex(sc)
	s.track(sc, pending)
	return nil
}
