// Package natsstore is a store.Store kept in NATS JetStream, for daemons
// that share accounts across machines.
//
// # Design
//
// The state is an event log: one stream, one subject per scope — an
// account (its cursor, seen ids, outbox items, dead letters, cooldowns,
// conversation log and login, with its wId), the items no account owns, a
// named session, a plugin's key-value space. Every write (a page commit, a
// delivery-state change, a login saved) is one event: one message published
// on its scope's subject with the expected last sequence of that subject
// (WithExpectLastSequencePerSubject). Each daemon keeps the scopes it uses
// materialised in memory (a store.Memory per scope), loaded by replaying
// the subject, and applies an event only once the stream acknowledged it.
//
// Why a page commit is atomic: the cursor, the seen ids, the new items,
// the echoes' settlements, the cooldowns, the skipped items and the log
// entries travel in one message, and a JetStream message is stored whole or
// not at all. Applying it is deterministic — every input (the time, and the
// ids of new items, taken from the message's stream sequence) is in the
// message or its position — so every daemon that replays the subject
// rebuilds the same state the writer had.
//
// Why it is durable: the publish returns only once the stream's leader
// stored the message and a quorum of its replicas (Replicas, 3 in a
// cluster) acknowledged it; with file storage it survives the loss of any
// minority of the servers. A write whose acknowledgement did not arrive is
// not applied locally; the scope is replayed before its next write, so the
// write is then either in the log (and applied) or not at all.
//
// Why writers cannot interleave: the expected last sequence makes each
// write a compare-and-set on its scope. A daemon that took an account over
// first publishes a claim on the account's subject (Claim); from then on
// every write of the previous holder fails with ErrFenced, so a paused
// daemon that resumes cannot commit a page nor record an attempt, and a
// send is never made without its attempt being recorded first. A refusal
// while the subject's last message is still the one expected (a cluster
// under load answers so, now and then) is tried again, not taken for a
// takeover: an account is fenced once its replay finds another's events.
//
// Snapshots: once SnapshotEvery events (or SnapshotBytes of them) went
// into a scope since its last snapshot, the daemon that just wrote to it
// publishes the scope's whole state (store.Memory's Snapshot, gzipped) on
// the same subject, then purges the subject's events before it, so that a
// replay reads the snapshot and what followed instead of the whole
// history. A snapshot larger than one message (the stream's MaxMsgSize
// and the server's max_payload) is cut into parts, each its own event. It
// changes nothing a replay can tell, for three reasons. Each part is
// published, like any write, as a compare-and-set on the subject's last
// sequence, under the lock the write held: the parts are consecutive on
// the subject, right after the write, and describe the state at exactly
// that write; a daemon another one took the account from is refused, or
// does not try. The state is the one every replica of the log holds at
// that point, since applying the log is deterministic, and it carries what
// the purge takes from the log and the state needs: the holder of the last
// claim, which fences a daemon replaying from the snapshot as the claim
// would, and nothing else — item ids come from the stream sequences of the
// events after it, which the purge leaves alone. And the purge keeps the
// snapshot's first part and everything after it: each event names the
// sequence before it on the subject, so a replay that lost events to a
// purge made while it read knows, finds a snapshot's start right after
// the gap, and reads on to the snapshot's end before it answers (a gap
// anywhere else fails the replay: TestReplayRefusesMissingEvents). Parts
// that their writer gave up on (a lost answer, a conflict) are dropped by
// the next event. The writer applies its own snapshot as a replay does. A
// snapshot or purge that fails fails no write — the write was stored
// already — and is counted (SnapshotFailures) and tried again after as
// many events. The tests
// check that a store replaying from snapshots, one that followed the
// snapshots and purges as they happened, and a replay of the whole log
// skipping them answer alike, on one server and on three.
//
// Bounds: OutboxMax and the key-value bounds are checked before publishing,
// against the scopes this daemon holds; DeadMax, the log bounds and the
// seen ids' bounds (SeenRetention by the events' times, then SeenMax per
// account, oldest first, as the bbolt store forgets them) apply per scope,
// in the replay itself, so that every replica drops the same entries. With
// snapshots, the subject of a scope holds its last snapshot and the events
// since, so replay time and storage follow the size of the state, not the
// history. Reads of the pauses and cooldowns forget the ended ones, as
// bolt's do; a snapshot taken after such a read lacks them, which only a
// read as of an earlier time than that read could tell.
package natsstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/store"
)

// ErrFenced is returned by a write to an account another daemon wrote to
// since this one last read it: the account was taken over.
var ErrFenced = errors.New("natsstore: the account was written by another daemon (fenced)")

// maxMsgSize is the stream's bound on a message.
const maxMsgSize = 8 << 20

// idShift leaves room for 1023 new items per event in the ids derived from
// the event's stream sequence.
const idShift = 10

// Options configure a Store.
type Options struct {
	// Stream names the stream holding the events (default "FINDERBOT");
	// its subjects are Stream + ".>". The leases bucket is Stream + "_LEASES".
	Stream string
	// Replicas is the stream's replica count (default 1; 3 in a cluster).
	Replicas int
	// Holder names this daemon in the claims it writes.
	Holder string
	// Timeout bounds each JetStream request (default 10 s).
	Timeout time.Duration
	// Store bounds the state and gives the clock, as for the bbolt store.
	Store store.Options
	// SnapshotEvery and SnapshotBytes say when the writer of a scope
	// publishes a snapshot of it and purges the events before: once that
	// many events, or that many bytes of events, went into the scope since
	// its last snapshot (defaults 1,000 events and 4 MiB). SnapshotEvery
	// below zero turns snapshots off: the log then grows for ever.
	SnapshotEvery int
	SnapshotBytes int
}

// Store is a store.Store in JetStream. It is safe for concurrent use.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	leases jetstream.KeyValue
	opts   Options
	bounds store.Options // with defaults

	chunk    int          // the most snapshot bytes one message carries
	snapErrs atomic.Int64 // snapshots that failed
	// purge takes the subject's events before seq out of the stream
	// (stream.Purge; tests replace it).
	purge func(ctx context.Context, subject string, seq uint64) error

	mu     sync.Mutex
	scopes map[string]*scope // by subject
	owner  map[uint64]*scope // outbox item id -> its scope
	items  atomic.Int64      // outbox items held
	closed bool
}

var _ store.Store = (*Store)(nil)

// scope is one subject's state.
type scope struct {
	subject string
	account string // for account scopes

	mu     sync.Mutex // held across a write: check, publish, apply
	loaded bool
	last   uint64 // the subject's last sequence applied
	mem    *store.Memory
	at     atomic.Pointer[time.Time] // the time of the event being applied
	ids    map[uint64]struct{}       // the outbox ids in mem
	events uint64
	// since and sinceBytes count the events, and their bytes, applied
	// since the scope's last snapshot.
	since, sinceBytes int
	// claimer is the holder of the account's last claim, which a snapshot
	// carries so that a daemon replaying from it is fenced alike.
	claimer string
	// parts are the parts of a snapshot read so far, held until the
	// event that ends it.
	parts []*snapshotRef
	// gap is set when a replay found events missing before a snapshot
	// (purged since it began reading): the state is not the log's until
	// the snapshot's end restores it, so the replay reads on to there.
	gap bool
	// fenced is set once another daemon claimed the account, or wrote it
	// since this one read it; writes fail until this daemon claims it.
	fenced bool
	// lastForeign is the sequence of the last event applied that another
	// daemon wrote.
	lastForeign uint64
}

// Open connects a Store to the JetStream of nc, creating its stream and
// lease bucket when they do not exist.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	if opts.Stream == "" {
		opts.Stream = "FINDERBOT"
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Store.Now == nil {
		opts.Store.Now = time.Now
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = 1000
	}
	if opts.SnapshotBytes <= 0 {
		opts.SnapshotBytes = 4 << 20
	}
	bounds := opts.Store.WithDefaults()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("natsstore: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	st, err := EnsureStream(cctx, js, jetstream.StreamConfig{
		Name: opts.Stream, Subjects: []string{opts.Stream + ".>"}, Storage: jetstream.FileStorage,
		Replicas: opts.Replicas, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
		MaxMsgSize: maxMsgSize, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: create stream %s (%d replicas): %w", opts.Stream, opts.Replicas, err)
	}
	kv, err := EnsureKeyValue(cctx, js, jetstream.KeyValueConfig{
		Bucket: opts.Stream + "_LEASES", History: 1, Storage: jetstream.FileStorage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsstore: create lease bucket %s_LEASES: %w", opts.Stream, err)
	}
	s := &Store{js: js, stream: st, leases: kv, opts: opts, bounds: bounds, scopes: map[string]*scope{}, owner: map[uint64]*scope{}}
	// A message must pass both the stream's MaxMsgSize and the server's
	// max_payload; the envelope of the event, its headers and base64 take
	// the rest.
	limit := min(int64(maxMsgSize), nc.MaxPayload())
	s.chunk = max(int(limit-16<<10)*3/4, 4<<10)
	s.purge = func(ctx context.Context, subject string, seq uint64) error {
		return st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(seq))
	}
	return s, nil
}

// attempt bounds each try of EnsureStream and EnsureKeyValue: a request
// lost while the cluster elects a leader is tried again rather than waited
// on.
const attempt = 3 * time.Second

// EnsureStream returns the stream cfg names, creating it when there is
// none. Daemons starting together race to create it; the losers find it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = js.CreateStream(ctx, cfg)
		}
		return st, err
	})
}

// EnsureKeyValue returns the bucket cfg names, creating it when there is
// none, as EnsureStream does.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
		}
		return kv, err
	})
}

func ensure[T any](ctx context.Context, try func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := try(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// Close implements store.Store: later calls fail with ErrClosed. The
// connection belongs to the caller.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// subject escapes name into the subject of a scope of the given kind.
func (s *Store) subject(kind, name string) string {
	return s.opts.Stream + ".ev." + lease.Key(kind, name)
}

func (s *Store) accountScope(account string) *scope {
	if account == "" {
		return s.scope(s.opts.Stream+".ev.glob", "")
	}
	return s.scope(Subject(s.opts.Stream, account), account)
}

func (s *Store) scope(subject, account string) *scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopes[subject]
	if sc == nil {
		sc = &scope{subject: subject, account: account, ids: map[uint64]struct{}{}}
		mo := s.opts.Store
		// The replay enforces only the bounds that drop entries, so that
		// applying an acknowledged event can never fail.
		mo.OutboxMax, mo.KVMaxKeys, mo.KVMaxValue = int(^uint(0)>>1), int(^uint(0)>>1), int(^uint(0)>>1)
		now := s.opts.Store.Now
		mo.Now = func() time.Time {
			if t := sc.at.Load(); t != nil {
				return *t
			}
			return now()
		}
		sc.mem = store.NewMemory(mo)
		s.scopes[subject] = sc
	}
	return sc
}

// event is one write, as published.
type event struct {
	Op      string              `json:"op"`
	At      time.Time           `json:"at"`
	Holder  string              `json:"holder,omitempty"`
	Page    *store.Commit       `json:"page,omitempty"`
	Changes *store.Changes      `json:"changes,omitempty"`
	Items   []store.Item        `json:"items,omitempty"`
	Account *store.Account      `json:"account,omitempty"`
	Session *store.SessionState `json:"session,omitempty"`
	Name    string              `json:"name,omitempty"`
	ID      uint64              `json:"id,omitempty"`
	Key     string              `json:"key,omitempty"`
	Value   []byte              `json:"value,omitempty"`
	Snap    *snapshotRef        `json:"snap,omitempty"`
	// Prev is the subject's sequence before this event (the expected last
	// sequence it was published with), by which a replay knows it missed
	// none: only a purge takes events out, and only up to a snapshot.
	Prev uint64 `json:"prev,omitempty"`
}

// startsSnapshot reports whether ev is the first event of a snapshot.
func (ev *event) startsSnapshot() bool {
	return (ev.Op == opSnapPart || ev.Op == opSnapshot) && ev.Snap != nil && ev.Snap.Part == 0
}

// Event operations.
const (
	opPage    = "page"
	opEnqueue = "enqueue"
	opRecord  = "record"
	opAccount = "account"
	opSession = "session"
	opRevive  = "revive"
	opDrop    = "drop"
	opKVPut   = "kv_put"
	opKVDel   = "kv_del"
	opClaim   = "claim"
	opResume  = "resume"
	// A snapshot is its parts, each an event, then the event ending it;
	// see snapshot.
	opSnapPart = "snapshot_part"
	opSnapshot = "snapshot"
)

// result is what applying an event returned.
type result struct {
	page     store.PageResult
	items    []store.Item
	recorded store.Recorded
	resumed  bool
}

// apply applies ev, the event at stream sequence seq and of size bytes,
// to sc. Applying an acknowledged event never fails: every check was made
// before it was published, and the in-memory store is unbounded where a
// bound could refuse it.
func (s *Store) apply(sc *scope, ev *event, seq uint64, size int) (result, error) {
	ctx := context.Background()
	at := ev.At
	sc.at.Store(&at)
	defer sc.at.Store(nil)
	sc.mem.SetNextID(seq << idShift)
	var r result
	var err error
	switch ev.Op {
	case opPage:
		r.page, err = sc.mem.CommitPage(ctx, *ev.Page)
	case opEnqueue:
		r.items, err = sc.mem.Enqueue(ctx, ev.Items)
	case opRecord:
		r.recorded, err = sc.mem.Record(ctx, *ev.Changes)
	case opAccount:
		err = sc.mem.SaveAccount(ctx, ev.Name, *ev.Account)
	case opSession:
		err = sc.mem.SaveSession(ctx, ev.Name, *ev.Session)
	case opRevive:
		var it store.Item
		if it, err = sc.mem.Revive(ctx, ev.ID); err == nil {
			r.items = []store.Item{it}
		} else if errors.Is(err, store.ErrNotFound) {
			err = nil // dropped by a bound meanwhile: nothing to do
		}
	case opDrop:
		if err = sc.mem.DropDeadLetter(ctx, ev.ID); errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	case opKVPut:
		err = sc.mem.KV(ev.Name).Put(ctx, ev.Key, ev.Value)
	case opKVDel:
		err = sc.mem.KV(ev.Name).Delete(ctx, ev.Key)
	case opClaim:
		sc.fenced = ev.Holder != s.opts.Holder
		sc.claimer = ev.Holder
	case opResume:
		r.resumed, err = sc.mem.Resume(ctx, ev.Name, ev.Key)
	case opSnapPart:
		if ev.Snap.Part == 0 {
			sc.parts = nil // those of a snapshot its writer gave up
		}
		sc.parts = append(sc.parts, ev.Snap)
	case opSnapshot:
		err = s.restore(sc, ev.Snap)
	default:
		err = fmt.Errorf("unknown operation %q", ev.Op)
	}
	if ev.Op != opSnapPart {
		// A snapshot's parts are only ever followed by the rest of it:
		// others stopped where its writer gave up.
		sc.parts = nil
	}
	sc.last = seq
	sc.events++
	if ev.Holder != s.opts.Holder {
		sc.lastForeign = max(sc.lastForeign, seq)
	}
	sc.since++
	sc.sinceBytes += size
	if ev.Op == opSnapshot && err == nil {
		sc.since, sc.sinceBytes = 0, 0
	}
	s.index(sc, ev, &r)
	if err != nil {
		return r, fmt.Errorf("natsstore: %s: event %d (%s) does not apply: %w", sc.subject, seq, ev.Op, err)
	}
	return r, nil
}

// index records the outbox items ev added to sc and took out of it, so
// that Record finds an item's account, and the outbox bound its count,
// without reading the outbox.
func (s *Store) index(sc *scope, ev *event, r *result) {
	var added []store.Item
	var gone []uint64
	switch ev.Op {
	case opPage:
		added, gone = r.page.Items, r.page.Settled
	case opEnqueue, opRevive:
		added = r.items
	case opRecord:
		added = r.recorded.Added
		gone = append(gone, ev.Changes.Remove...)
		for _, d := range ev.Changes.Dead {
			gone = append(gone, d.Item.ID)
		}
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.track(sc, added)
	for _, id := range gone {
		if _, ok := sc.ids[id]; ok {
			delete(sc.ids, id)
			delete(s.owner, id)
			s.items.Add(-1)
		}
	}
}

// load brings sc up to date with its subject: on first use, the whole
// subject; later, what other daemons wrote since. sc.mu is held.
func (s *Store) load(ctx context.Context, sc *scope) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout*3)
	defer cancel()
	last, err := s.stream.GetLastMsgForSubject(ctx, sc.subject)
	var target uint64
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("natsstore: read %s: %w", sc.subject, err)
	default:
		target = last.Sequence
	}
	sc.loaded = true
	if target <= sc.last && !sc.gap {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{sc.subject}}
	if sc.last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, sc.last+1
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		sc.loaded = false
		return fmt.Errorf("natsstore: replay %s: %w", sc.subject, err)
	}
	it, err := cons.Messages()
	if err != nil {
		sc.loaded = false
		return fmt.Errorf("natsstore: replay %s: %w", sc.subject, err)
	}
	defer it.Stop()
	for sc.last < target || sc.gap {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			sc.loaded = false
			return fmt.Errorf("natsstore: replay %s at sequence %d of %d: %w", sc.subject, sc.last, target, err)
		}
		md, err := m.Metadata()
		if err != nil {
			sc.loaded = false
			return fmt.Errorf("natsstore: replay %s: %w", sc.subject, err)
		}
		var ev event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			sc.loaded = false
			return fmt.Errorf("natsstore: %s: event %d is damaged: %w", sc.subject, md.Sequence.Stream, err)
		}
		if ev.Prev != 0 && ev.Prev != sc.last {
			if !ev.startsSnapshot() {
				// Never from a purge, which keeps a snapshot whole and
				// all after it: the log is damaged, or this state is
				// wrong. The next use replays from the start.
				s.reset(sc)
				return fmt.Errorf("natsstore: %s: the events between sequences %d and %d are missing", sc.subject, ev.Prev, md.Sequence.Stream)
			}
			sc.gap = true
		}
		if _, err := s.apply(sc, &ev, md.Sequence.Stream, len(m.Data())); err != nil {
			sc.loaded = false
			return err
		}
	}
	return nil
}

// empty is the state of a scope with no events.
var empty, _ = store.NewMemory(store.Options{}).Snapshot()

// reset empties sc, for its next use to replay its subject from the
// start. A fence stays. sc.mu is held.
func (s *Store) reset(sc *scope) {
	sc.mem.Restore(empty)
	s.mu.Lock()
	s.unindex(sc)
	s.mu.Unlock()
	sc.loaded, sc.last, sc.parts, sc.gap, sc.since, sc.sinceBytes = false, 0, nil, false, 0, 0
}

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("natsstore: the store is closed")

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// read runs f on sc's state, loading it first.
func (s *Store) read(ctx context.Context, sc *scope, f func(*store.Memory) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return ErrClosed
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.loaded {
		if err := s.load(ctx, sc); err != nil {
			return err
		}
	}
	return f(sc.mem)
}

// write publishes the event made by build (which may refuse it by its
// error) on sc's subject as a compare-and-set on the last sequence applied,
// and applies it. A conflict on a shared scope is resolved by catching up
// and trying again; on an account, too, unless the events caught up with
// hold another daemon's: then the account was taken over, and the write
// fails with ErrFenced.
func (s *Store) write(ctx context.Context, sc *scope, build func(*store.Memory) (*event, error)) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if s.isClosed() {
		return result{}, ErrClosed
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !sc.loaded {
			if err := s.load(ctx, sc); err != nil {
				return result{}, err
			}
		}
		ev, err := build(sc.mem)
		if err != nil || ev == nil {
			return result{}, err
		}
		if sc.fenced && ev.Op != opClaim {
			return result{}, fmt.Errorf("%w: %s (%s)", ErrFenced, sc.account, sc.subject)
		}
		decoded, seq, size, err := s.send(ctx, sc, ev)
		if err != nil {
			if !wrongLast(err) || attempt >= 100 {
				return result{}, fmt.Errorf("natsstore: write %s to %s: %w", ev.Op, sc.subject, err)
			}
			// The subject moved since this daemon read it, or the server
			// refused the compare-and-set in error (a loaded cluster's
			// leader that had not applied the last write yet). Another
			// daemon's write to an account fences this one; anything
			// else is caught up with and written on from: a shared
			// scope's other writers, a refusal in error, or a write of
			// this daemon's own whose acknowledgement failed (a cluster
			// without a quorum) and that was stored after all once the
			// quorum was back.
			before := sc.last
			if lerr := s.load(ctx, sc); lerr != nil {
				return result{}, lerr
			}
			if sc.account != "" && ev.Op != opClaim && (sc.fenced || sc.lastForeign > before) {
				sc.fenced = true
				return result{}, fmt.Errorf("%w: %s (%s)", ErrFenced, sc.account, sc.subject)
			}
			if sc.last == before {
				// Refused in error: the same write again, once the
				// leader had a moment.
				t := time.NewTimer(time.Duration(min(attempt+1, 5)) * 20 * time.Millisecond)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			continue
		}
		r, err := s.apply(sc, decoded, seq, size)
		if err == nil {
			s.snapshot(ctx, sc)
		}
		return r, err
	}
}

// send publishes ev on sc's subject as a compare-and-set on the last
// sequence applied, and returns the event as a replay will read it, its
// stream sequence and its size. When it fails, whether it was stored is
// unknown until the subject is read again, which the next use of sc does.
func (s *Store) send(ctx context.Context, sc *scope, ev *event) (*event, uint64, int, error) {
	ev.At, ev.Holder, ev.Prev = s.opts.Store.Now().Round(0).UTC(), s.opts.Holder, sc.last
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("natsstore: encode %s event: %w", ev.Op, err)
	}
	// What is applied is what a replay will read, byte for byte.
	var decoded event
	if err := json.Unmarshal(data, &decoded); err != nil {
		return nil, 0, 0, fmt.Errorf("natsstore: decode %s event: %w", ev.Op, err)
	}
	// The message id lets a writer whose acknowledgement was lost find its
	// write: the server checks the expected sequence before duplicates, so
	// the id is looked for on the subject itself.
	msgID := newMsgID()
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		ack, err := s.js.Publish(pctx, sc.subject, data, jetstream.WithMsgID(msgID),
			jetstream.WithExpectLastSequencePerSubject(sc.last), jetstream.WithExpectStream(s.opts.Stream))
		cancel()
		if err == nil {
			return &decoded, ack.Sequence, len(data), nil
		}
		if last, id, found := s.lastOn(ctx, sc.subject); found && id == msgID {
			return &decoded, last, len(data), nil
		}
		if wrongLast(err) || try == 4 || ctx.Err() != nil {
			// Whether it was stored is unknown until the subject is read
			// again, which the next use does.
			sc.loaded = false
			return nil, 0, 0, err
		}
		// No answer, and the write is not on the subject: the same write
		// again, which the expected sequence keeps single. Said, because
		// the daemon's work on the scope waits meanwhile: a cluster
		// electing a new leader takes seconds.
		s.bounds.Log.Warn("natsstore: no acknowledgement from JetStream; writing again",
			"subject", sc.subject, "op", ev.Op, "try", try+2, "err", err)
	}
}

// newMsgID returns a fresh message id.
func newMsgID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lastOn returns the sequence and message id of subject's last message,
// and whether it found one: a writer whose answer was lost looks there for
// its write.
func (s *Store) lastOn(ctx context.Context, subject string) (uint64, string, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	m, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return 0, "", false
	}
	return m.Sequence, m.Header.Get(jetstream.MsgIDHeader), true
}

func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// room fails with store.ErrFull when n more items would pass OutboxMax.
func (s *Store) room(n int) error {
	if held := s.items.Load(); n > 0 && int(held)+n > s.bounds.OutboxMax {
		return fmt.Errorf("%w: the outbox holds %d items, the limit is %d", store.ErrFull, held, s.bounds.OutboxMax)
	}
	if n >= 1<<idShift {
		return fmt.Errorf("natsstore: %d items in one write, the limit is %d", n, 1<<idShift-1)
	}
	return nil
}

// Claim makes this daemon the account's only writer: it reads the account's
// state and publishes a claim on its subject, after which every write of a
// daemon that read it earlier fails with ErrFenced. The daemon calls it
// once it holds the account's lease, before anything else. held is asked
// before each try: a claim written after the lease ran out would fence its
// new holder.
func (s *Store) Claim(ctx context.Context, account string, held func() error) error {
	sc := s.accountScope(account)
	sc.mu.Lock()
	sc.loaded = false // whatever was read before may be stale
	sc.mu.Unlock()
	_, err := s.write(ctx, sc, func(*store.Memory) (*event, error) {
		if err := held(); err != nil {
			return nil, fmt.Errorf("natsstore: claim %s: %w", account, err)
		}
		return &event{Op: opClaim}, nil
	})
	return err
}

// Of returns the part of the store that is one account's: what a daemon
// that takes the account over reads to resume it, without reading the
// other accounts it serves.
func (s *Store) Of(account string) *Account {
	return &Account{s: s, name: account}
}

// Account is one account's part of a Store.
type Account struct {
	s    *Store
	name string
}

// Pending returns the account's outbox items, in ID order.
func (a *Account) Pending(ctx context.Context) (out []store.Item, err error) {
	err = a.s.read(ctx, a.s.accountScope(a.name), func(m *store.Memory) error {
		out, err = m.Pending(ctx)
		return err
	})
	return out, err
}

// Record applies delivery-state changes, as Store.Record.
func (a *Account) Record(ctx context.Context, c store.Changes) (store.Recorded, error) {
	return a.s.Record(ctx, c)
}

// Cooldowns returns the account's rule cooldowns still running at now.
func (a *Account) Cooldowns(ctx context.Context, now time.Time) (out []store.CooldownMark, err error) {
	err = a.s.read(ctx, a.s.accountScope(a.name), func(m *store.Memory) error {
		out, err = m.Cooldowns(ctx, now)
		return err
	})
	return out, err
}

// Forget drops the account's state from memory, once the account passed to
// another daemon; its items leave Pending.
func (s *Store) Forget(account string) {
	sc := s.accountScope(account)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	s.mu.Lock()
	delete(s.scopes, sc.subject)
	s.unindex(sc)
	s.mu.Unlock()
}

// track indexes items as sc's. s.mu is held.
func (s *Store) track(sc *scope, items []store.Item) {
	for _, it := range items {
		sc.ids[it.ID] = struct{}{}
		s.owner[it.ID] = sc
	}
	s.items.Add(int64(len(items)))
}

// unindex takes sc's outbox items out of the store's index. s.mu is held.
func (s *Store) unindex(sc *scope) {
	for id := range sc.ids {
		if s.owner[id] == sc {
			delete(s.owner, id)
		}
	}
	s.items.Add(-int64(len(sc.ids)))
	clear(sc.ids)
}

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, name string) (a store.Account, err error) {
	err = s.read(ctx, s.accountScope(name), func(m *store.Memory) error {
		a, err = m.Account(ctx, name)
		return err
	})
	return a, err
}

// SaveAccount implements store.Store.
func (s *Store) SaveAccount(ctx context.Context, name string, a store.Account) error {
	_, err := s.write(ctx, s.accountScope(name), func(*store.Memory) (*event, error) {
		return &event{Op: opAccount, Name: name, Account: &a}, nil
	})
	return err
}

// Cursor implements store.Store.
func (s *Store) Cursor(ctx context.Context, account string) (c string, err error) {
	err = s.read(ctx, s.accountScope(account), func(m *store.Memory) error {
		c, err = m.Cursor(ctx, account)
		return err
	})
	return c, err
}

// Unseen implements store.Store.
func (s *Store) Unseen(ctx context.Context, account string, ids []uint64) (out []uint64, err error) {
	err = s.read(ctx, s.accountScope(account), func(m *store.Memory) error {
		out, err = m.Unseen(ctx, account, ids)
		return err
	})
	return out, err
}

// CommitPage implements store.Store: the page is one event.
func (s *Store) CommitPage(ctx context.Context, c store.Commit) (store.PageResult, error) {
	r, err := s.write(ctx, s.accountScope(c.Account), func(m *store.Memory) (*event, error) {
		unseen, err := m.Unseen(ctx, c.Account, c.MsgIDs)
		if err != nil {
			return nil, err
		}
		fresh := map[uint64]bool{}
		for _, id := range unseen {
			fresh[id] = true
		}
		n := 0
		for _, it := range c.Items {
			if it.MsgID == 0 || fresh[it.MsgID] || !slices.Contains(c.MsgIDs, it.MsgID) {
				n++
			}
		}
		if err := s.room(n); err != nil {
			return nil, fmt.Errorf("natsstore: commit page of %s: %w", c.Account, err)
		}
		return &event{Op: opPage, Page: &c}, nil
	})
	return r.page, err
}

// Enqueue implements store.Store; the items of each account are one event.
func (s *Store) Enqueue(ctx context.Context, items []store.Item) ([]store.Item, error) {
	if err := s.room(len(items)); err != nil {
		return nil, fmt.Errorf("natsstore: enqueue: %w", err)
	}
	var out []store.Item
	for account, group := range groupBy(items, func(it store.Item) string { return it.Account }) {
		r, err := s.write(ctx, s.accountScope(account), func(*store.Memory) (*event, error) {
			if err := s.room(len(group)); err != nil {
				return nil, fmt.Errorf("natsstore: enqueue: %w", err)
			}
			return &event{Op: opEnqueue, Items: group}, nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, r.items...)
	}
	return restoreOrder(items, out), nil
}

// groupBy splits items by key, keeping their order within each group.
func groupBy[T any](items []T, key func(T) string) map[string][]T {
	out := map[string][]T{}
	for _, it := range items {
		k := key(it)
		out[k] = append(out[k], it)
	}
	return out
}

// restoreOrder returns the stored items in the order the caller gave them:
// groups were stored one after the other, each in order.
func restoreOrder(given, stored []store.Item) []store.Item {
	byAccount := groupBy(stored, func(it store.Item) string { return it.Account })
	out := make([]store.Item, 0, len(stored))
	for _, it := range given {
		g := byAccount[it.Account]
		if len(g) == 0 {
			continue
		}
		out = append(out, g[0])
		byAccount[it.Account] = g[1:]
	}
	return out
}

// Pending implements store.Store: the items of the scopes this daemon
// holds, in ID order.
func (s *Store) Pending(ctx context.Context) ([]store.Item, error) {
	s.accountScope("") // the items of no account are everyone's
	out, err := gather(ctx, s, func(m *store.Memory) ([]store.Item, error) { return m.Pending(ctx) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.Item) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) loadedScopes() []*scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*scope, 0, len(s.scopes))
	for _, sc := range s.scopes {
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b *scope) int { return cmp.Compare(a.subject, b.subject) })
	return out
}

// scopeOf returns the scope holding outbox item id, or the scope of the
// account named as a fallback.
func (s *Store) scopeOf(id uint64, account string) *scope {
	s.mu.Lock()
	sc := s.owner[id]
	s.mu.Unlock()
	if sc == nil {
		sc = s.accountScope(account)
	}
	return sc
}

// Record implements store.Store. The changes of each account are one
// event: atomic per account. The outbox records one conversation's changes
// at a time, which are one account's.
func (s *Store) Record(ctx context.Context, c store.Changes) (store.Recorded, error) {
	if err := s.room(len(c.Add)); err != nil {
		return store.Recorded{}, fmt.Errorf("natsstore: record delivery states: %w", err)
	}
	parts := map[*scope]*store.Changes{}
	part := func(sc *scope) *store.Changes {
		if parts[sc] == nil {
			parts[sc] = &store.Changes{}
		}
		return parts[sc]
	}
	for _, it := range c.Put {
		p := part(s.scopeOf(it.ID, it.Account))
		p.Put = append(p.Put, it)
	}
	for _, id := range c.Remove {
		s.mu.Lock()
		sc := s.owner[id]
		s.mu.Unlock()
		if sc != nil {
			p := part(sc)
			p.Remove = append(p.Remove, id)
		}
	}
	for _, d := range c.Dead {
		p := part(s.scopeOf(d.Item.ID, d.Item.Account))
		p.Dead = append(p.Dead, d)
	}
	for _, it := range c.Add {
		p := part(s.accountScope(it.Account))
		p.Add = append(p.Add, it)
	}
	var res store.Recorded
	scopes := make([]*scope, 0, len(parts))
	for sc := range parts {
		scopes = append(scopes, sc)
	}
	slices.SortFunc(scopes, func(a, b *scope) int { return cmp.Compare(a.subject, b.subject) })
	for _, sc := range scopes {
		p := parts[sc]
		r, err := s.write(ctx, sc, func(*store.Memory) (*event, error) { return &event{Op: opRecord, Changes: p}, nil })
		if err != nil {
			return res, err
		}
		res.Added = append(res.Added, r.recorded.Added...)
		res.Missing = append(res.Missing, r.recorded.Missing...)
	}
	res.Added = restoreOrder(c.Add, res.Added)
	return res, nil
}

// Foreign implements store.Store, against the account's outbox.
func (s *Store) Foreign(ctx context.Context, account string, echoes []store.Echo) (out []int, err error) {
	err = s.read(ctx, s.accountScope(account), func(m *store.Memory) error {
		out, err = m.Foreign(ctx, account, echoes)
		return err
	})
	return out, err
}

// gather collects what read returns from each account this daemon holds.
func gather[T any](ctx context.Context, s *Store, read func(*store.Memory) ([]T, error)) ([]T, error) {
	var out []T
	for _, sc := range s.loadedScopes() {
		err := s.read(ctx, sc, func(m *store.Memory) error {
			got, err := read(m)
			out = append(out, got...)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Pauses implements store.Store: those of the accounts this daemon holds.
// The pauses are part of the page events that began them.
func (s *Store) Pauses(ctx context.Context, now time.Time) ([]store.Pause, error) {
	out, err := gather(ctx, s, func(m *store.Memory) ([]store.Pause, error) { return m.Pauses(ctx, now) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.Pause) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Conv, b.Conv))
	})
	return out, nil
}

// Resume implements store.Store; the resume is an event of the account.
func (s *Store) Resume(ctx context.Context, account, conv string) (bool, error) {
	r, err := s.write(ctx, s.accountScope(account), func(*store.Memory) (*event, error) {
		return &event{Op: opResume, Name: account, Key: conv}, nil
	})
	return r.resumed, err
}

// Cooldowns implements store.Store: those of the accounts this daemon holds.
func (s *Store) Cooldowns(ctx context.Context, now time.Time) ([]store.CooldownMark, error) {
	out, err := gather(ctx, s, func(m *store.Memory) ([]store.CooldownMark, error) { return m.Cooldowns(ctx, now) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.CooldownMark) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Conv, b.Conv))
	})
	return out, nil
}

// InboundDeadLetters implements store.Store.
func (s *Store) InboundDeadLetters(ctx context.Context, limit int) ([]store.InboundDeadLetter, error) {
	out, err := gather(ctx, s, func(m *store.Memory) ([]store.InboundDeadLetter, error) { return m.InboundDeadLetters(ctx, 0) })
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b store.InboundDeadLetter) int { return a.At.Compare(b.At) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	out, err := gather(ctx, s, func(m *store.Memory) ([]store.DeadLetter, error) { return m.DeadLetters(ctx, 0) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.DeadLetter) int { return cmp.Compare(a.Item.ID, b.Item.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// deadScope finds the scope holding dead letter id.
func (s *Store) deadScope(ctx context.Context, id uint64) (*scope, error) {
	dead, err := s.DeadLetters(ctx, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range dead {
		if d.Item.ID == id {
			return s.accountScope(d.Item.Account), nil
		}
	}
	return nil, store.ErrNotFound
}

// Revive implements store.Store.
func (s *Store) Revive(ctx context.Context, id uint64) (store.Item, error) {
	sc, err := s.deadScope(ctx, id)
	if err != nil {
		return store.Item{}, fmt.Errorf("natsstore: revive dead letter %d: %w", id, err)
	}
	r, err := s.write(ctx, sc, func(m *store.Memory) (*event, error) {
		if !hasDead(ctx, m, id) {
			return nil, fmt.Errorf("natsstore: revive dead letter %d: %w", id, store.ErrNotFound)
		}
		if err := s.room(1); err != nil {
			return nil, fmt.Errorf("natsstore: revive dead letter %d: %w", id, err)
		}
		return &event{Op: opRevive, ID: id}, nil
	})
	if err != nil {
		return store.Item{}, err
	}
	if len(r.items) == 0 {
		return store.Item{}, fmt.Errorf("natsstore: revive dead letter %d: %w", id, store.ErrNotFound)
	}
	return r.items[0], nil
}

func hasDead(ctx context.Context, m *store.Memory, id uint64) bool {
	dead, _ := m.DeadLetters(ctx, 0)
	return slices.ContainsFunc(dead, func(d store.DeadLetter) bool { return d.Item.ID == id })
}

// DropDeadLetter implements store.Store.
func (s *Store) DropDeadLetter(ctx context.Context, id uint64) error {
	sc, err := s.deadScope(ctx, id)
	if err != nil {
		return fmt.Errorf("natsstore: drop dead letter %d: %w", id, err)
	}
	_, err = s.write(ctx, sc, func(m *store.Memory) (*event, error) {
		if !hasDead(ctx, m, id) {
			return nil, fmt.Errorf("natsstore: drop dead letter %d: %w", id, store.ErrNotFound)
		}
		return &event{Op: opDrop, ID: id}, nil
	})
	return err
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, name string) (st store.SessionState, err error) {
	err = s.read(ctx, s.scope(s.subject("sess", name), ""), func(m *store.Memory) error {
		st, err = m.Session(ctx, name)
		return err
	})
	return st, err
}

// SaveSession implements store.Store.
func (s *Store) SaveSession(ctx context.Context, name string, st store.SessionState) error {
	_, err := s.write(ctx, s.scope(s.subject("sess", name), ""), func(*store.Memory) (*event, error) {
		return &event{Op: opSession, Name: name, Session: &st}, nil
	})
	return err
}

// Conversations implements store.Store.
func (s *Store) Conversations(ctx context.Context, account string, limit int) (out []store.Conversation, err error) {
	err = s.read(ctx, s.accountScope(account), func(m *store.Memory) error {
		out, err = m.Conversations(ctx, account, limit)
		return err
	})
	return out, err
}

// KV implements store.Store: a plugin's space is a scope of its own.
func (s *Store) KV(plugin string) store.KV {
	return &kv{s: s, sc: s.scope(s.subject("kv", plugin), ""), name: plugin}
}

type kv struct {
	s    *Store
	sc   *scope
	name string
}

func (k *kv) Get(ctx context.Context, key string) (v []byte, ok bool, err error) {
	err = k.s.read(ctx, k.sc, func(m *store.Memory) error {
		v, ok, err = m.KV(k.name).Get(ctx, key)
		return err
	})
	return v, ok, err
}

func (k *kv) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("natsstore: kv %s: empty key", k.name)
	}
	if len(value) > k.s.bounds.KVMaxValue || len(key) > 1024 {
		return fmt.Errorf("%w: kv %s: %q: value of %d bytes, the limit is %d (keys up to 1024)", store.ErrFull, k.name, key, len(value), k.s.bounds.KVMaxValue)
	}
	_, err := k.s.write(ctx, k.sc, func(m *store.Memory) (*event, error) {
		space := m.KV(k.name)
		if _, ok, _ := space.Get(ctx, key); !ok {
			keys, _ := space.List(ctx, "", 0)
			if len(keys) >= k.s.bounds.KVMaxKeys {
				return nil, fmt.Errorf("%w: kv %s holds %d keys, the limit", store.ErrFull, k.name, k.s.bounds.KVMaxKeys)
			}
		}
		return &event{Op: opKVPut, Name: k.name, Key: key, Value: value}, nil
	})
	return err
}

func (k *kv) Delete(ctx context.Context, key string) error {
	_, err := k.s.write(ctx, k.sc, func(m *store.Memory) (*event, error) {
		if _, ok, _ := m.KV(k.name).Get(ctx, key); !ok {
			return nil, nil
		}
		return &event{Op: opKVDel, Name: k.name, Key: key}, nil
	})
	return err
}

func (k *kv) List(ctx context.Context, prefix string, limit int) (out []string, err error) {
	err = k.s.read(ctx, k.sc, func(m *store.Memory) error {
		out, err = m.KV(k.name).List(ctx, prefix, limit)
		return err
	})
	return out, err
}

// leaseRecord is what an app-key lease's key holds.
type leaseRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Lease implements store.Store in the lease bucket: taken with Create,
// renewed and taken over (once its holder let it run out) with an Update on
// the revision read, so that two daemons can never both get it.
func (s *Store) Lease(ctx context.Context, key, holder string, ttl time.Duration) (store.Lease, error) {
	k := lease.Key("store", key)
	for range 10 {
		now := s.opts.Store.Now()
		mine := leaseRecord{Holder: holder, Until: now.Add(ttl).Round(0).UTC()}
		data, _ := json.Marshal(mine)
		e, err := s.leases.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			if _, err = s.leases.Create(ctx, k, data); err == nil {
				return store.Lease{Key: key, Holder: holder, Until: mine.Until}, nil
			}
		case err == nil:
			var cur leaseRecord
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder != holder && now.Before(cur.Until) {
				return store.Lease{Key: key, Holder: cur.Holder, Until: cur.Until}, nil
			}
			if _, err = s.leases.Update(ctx, k, data, e.Revision()); err == nil {
				return store.Lease{Key: key, Holder: holder, Until: mine.Until}, nil
			}
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return store.Lease{}, fmt.Errorf("natsstore: lease %s: %w", key, err)
		}
	}
	return store.Lease{}, fmt.Errorf("natsstore: lease %s: too much contention", key)
}

// Leases returns the bucket holding the leases, for the daemons' account
// and session leases.
func (s *Store) Leases() jetstream.KeyValue { return s.leases }

// Subject returns the subject of the account's events, for tools that read
// the stream.
func Subject(stream, account string) string {
	return stream + ".ev." + lease.Key("acct", account)
}
