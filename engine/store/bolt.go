package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Options bound the embedded store. Zero fields take the defaults.
type Options struct {
	// SeenRetention is how long a message id is remembered for
	// deduplication (default 7 days).
	SeenRetention time.Duration
	// SeenMax is the most message ids remembered per account (default
	// 200,000); past it the oldest are forgotten first.
	SeenMax int
	// OutboxMax is the most items the outbox holds (default 1,000,000).
	// Past it, commits that add items fail with ErrFull and the page is
	// not acknowledged, so nothing is lost: it is synced again later.
	OutboxMax int
	// DeadMax is the most dead letters kept (default 100,000); past it the
	// oldest are dropped. The same bound applies to inbound dead letters.
	DeadMax int
	// KVMaxKeys and KVMaxValue bound each plugin's key-value space (default
	// 10,000 keys of at most 64 KiB).
	KVMaxKeys  int
	KVMaxValue int
	// LockTimeout is how long Open waits for another process to release
	// the state directory before failing with ErrLocked (default 1 s).
	LockTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// NoSync turns off fsync, for benchmarks of everything but the disk.
	NoSync bool
	// Log receives the store's notes (default: discard): a state
	// directory or file whose mode had to be tightened.
	Log *slog.Logger
	// OnDamage, when set, is called once, with the error, when a
	// transaction finds the file damaged (bbolt panicked reading it).
	// From then on every call fails with that error; the daemon stops.
	OnDamage func(error)
	// LogMax is how many messages the conversation log keeps per account
	// (default DefaultLogMax); negative keeps none, and has the next page
	// of an account drop what its log held. LogMaxAge is how long
	// it keeps one (default DefaultLogMaxAge). Both are enforced in the
	// page commits that add to an account's log: its oldest messages go
	// in the transaction that adds new ones.
	LogMax    int
	LogMaxAge time.Duration
	// NoBatch commits every write on its own instead of sharing
	// transactions between concurrent callers, which costs a short wait
	// per write; single-threaded callers (the deterministic simulation)
	// want it.
	NoBatch bool
}

// WithDefaults returns o with its zero fields set to their defaults, for
// other implementations of Store to bound themselves alike.
func (o Options) WithDefaults() Options {
	o.defaults()
	return o
}

func (o *Options) defaults() {
	if o.SeenRetention <= 0 {
		o.SeenRetention = 7 * 24 * time.Hour
	}
	if o.SeenMax <= 0 {
		o.SeenMax = 200_000
	}
	if o.OutboxMax <= 0 {
		o.OutboxMax = 1_000_000
	}
	if o.DeadMax <= 0 {
		o.DeadMax = 100_000
	}
	if o.KVMaxKeys <= 0 {
		o.KVMaxKeys = 10_000
	}
	if o.KVMaxValue <= 0 {
		o.KVMaxValue = 64 << 10
	}
	if o.LogMax == 0 {
		o.LogMax = DefaultLogMax
	}
	if o.LogMaxAge <= 0 {
		o.LogMaxAge = DefaultLogMaxAge
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

var (
	bucketAccounts = []byte("accounts")
	bucketCursors  = []byte("cursors")
	bucketSeen     = []byte("seen")     // account -> {id -> seen time}
	bucketSeenAge  = []byte("seen_age") // account -> {seen time + id -> nil}
	bucketOutbox   = []byte("outbox")
	bucketDead     = []byte("dead")
	bucketKV       = []byte("kv") // plugin -> {key -> value}
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketLeases   = []byte("leases")
	bucketAttempts = []byte("attempts")     // account -> {id -> nil}: items that may have reached the upstream
	bucketDelivery = []byte("delivery")     // id -> deliveryState, once an item's delivery has begun
	bucketCooldown = []byte("cooldowns")    // rule \x00 conversation -> CooldownMark
	bucketInbound  = []byte("inbound_dead") // sequence -> InboundDeadLetter
	bucketLog      = []byte("log")          // account -> {logged time + sequence -> LoggedMessage}
	bucketPauses   = []byte("pauses")       // account \x00 conversation -> Pause
	keyOutboxN     = []byte("outbox_n")
)

// dbName is the store's file in the state directory.
const dbName = "finderbot.db"

// File returns the store file of the state directory dir.
func File(dir string) string { return filepath.Join(dir, dbName) }

// Bolt is the embedded Store, one bbolt file in the state directory.
type Bolt struct {
	db   *bolt.DB
	opts Options
	dir  string

	lastTx  atomic.Pointer[bolt.Tx]
	commits atomic.Uint64
	writes  atomic.Uint64
	damaged atomic.Pointer[DamagedError]
}

var _ Store = (*Bolt)(nil)

// Open opens the store in dir, creating it when the directory holds none.
// The directory is made 0700 and the file 0600, tightened when looser. A
// directory held by another process fails fast with ErrLocked instead of
// waiting.
//
// An existing file is checked before anything reads it — the header, both
// meta pages, that the file holds all its pages, and every page (see
// openChecked) — and a damaged one is refused with a *DamagedError that
// says what to do, never replaced by a new store: an empty store would
// answer again every message the upstream still returns.
func Open(dir string, opts Options) (*Bolt, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		// The failing path may be a parent (a regular file in the way):
		// name the state directory too, as the operator configured it.
		return nil, fmt.Errorf("store: create state directory %s: %w", dir, err)
	}
	// The directory is made private before a store is created in it; the
	// notes are logged once the store opened, so that a refused store is
	// refused in one line.
	var notes []func()
	if err := private(dir, 0o700, "state directory", opts.Log, &notes); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dbName)
	bopts := bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(dir, path, bopts); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		}
	}
	db, err := openChecked(path, bopts, restoreAdvice(dir), 1)
	if err != nil {
		var de *DamagedError
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, fmt.Errorf("%w (%s); stop it first, or give this one its own state_dir", ErrLocked, dir)
		case errors.As(err, &de):
			return nil, fmt.Errorf("store: %w", err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := private(path, 0o600, "store file", opts.Log, &notes); err != nil {
		db.Close()
		return nil, err
	}
	for _, note := range notes {
		note()
	}
	// Copies that Check makes are removed when it ends; a crash leaves
	// them, and this process alone may hold the directory now.
	if stale, err := filepath.Glob(filepath.Join(dir, dbName+".check-*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Bolt{db: db, opts: opts, dir: dir}
	// A store written by an older finderbot may lack the newer buckets.
	if err := s.batch(context.Background(), "init "+path, createBuckets); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func createBuckets(tx *bolt.Tx) error {
	for _, b := range slices.Concat(allBuckets, optionalBuckets) {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// create makes a new store at path. It is built under a temporary name and
// linked into place, so that path never names a file bbolt has not yet
// initialised (a 0-byte file is refused as damaged), and linking fails
// rather than replacing a store another process created meanwhile.
func create(dir, path string, bopts bolt.Options) error {
	f, err := os.CreateTemp(dir, dbName+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bopts)
	if err != nil {
		return err
	}
	err = db.Update(createBuckets)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(dir)
}

// private makes path's mode perm when it is open to the group or others,
// and adds the log record that says so to notes; it fails when that
// cannot be done.
func private(path string, perm fs.FileMode, what string, log *slog.Logger, notes *[]func()) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: %s %s: %w", what, path, err)
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("store: %s %s has mode %04o, open to other users, and making it %04o failed: %w; make it private (chmod %o %s) or use another state_dir",
			what, path, was, perm, err, perm, path)
	}
	*notes = append(*notes, func() {
		log.Warn("store: "+what+" was open to other users; made it private", "path", path, "was", fmt.Sprintf("%04o", was), "now", fmt.Sprintf("%04o", perm))
	})
	return nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the file; it waits for transactions in progress.
func (s *Bolt) Close() error { return s.db.Close() }

// Commits returns the number of write transactions committed, which is the
// number of fsyncs of the data file: batched commits from many accounts
// count once.
func (s *Bolt) Commits() uint64 { return s.commits.Load() }

// Writes returns the number of write calls made (page commits, delivery
// records, enqueues…); several may share one transaction.
func (s *Bolt) Writes() uint64 { return s.writes.Load() }

// batch runs fn in a write transaction that may be shared with concurrent
// callers, so that many accounts' commits cost one fsync. Its errors are
// prefixed with op, which names the operation.
func (s *Bolt) batch(ctx context.Context, op string, fn func(*bolt.Tx) error) (err error) {
	defer s.wrap(op, &err)
	if err := s.usable(ctx); err != nil {
		return err
	}
	s.writes.Add(1)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fn = faultsPanic(fn)
	if s.opts.NoBatch {
		return s.db.Update(func(tx *bolt.Tx) error {
			tx.OnCommit(func() { s.commits.Add(1) })
			return fn(tx)
		})
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		if s.lastTx.Swap(tx) != tx {
			tx.OnCommit(func() { s.commits.Add(1) })
		}
		return fn(tx)
	})
}

// view runs fn in a read transaction, naming the operation op in its
// errors.
func (s *Bolt) view(ctx context.Context, op string, fn func(*bolt.Tx) error) (err error) {
	defer s.wrap(op, &err)
	if err := s.usable(ctx); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return s.db.View(fn)
}

// usable fails once the store found damage: a damaged file is not written
// again.
func (s *Bolt) usable(ctx context.Context) error {
	if d := s.damaged.Load(); d != nil {
		return d
	}
	return ctx.Err()
}

// wrap prefixes *err with the operation, and turns a panic inside bbolt —
// which only a damaged file causes — into a *DamagedError that stops the
// store, reported once to Options.OnDamage.
func (s *Bolt) wrap(op string, err *error) {
	if p := recover(); p != nil {
		d := &DamagedError{Path: filepath.Join(s.dir, dbName), Problems: []string{fmt.Sprintf("bbolt panicked: %v", p)}, Advice: restoreAdvice(s.dir)}
		if s.damaged.CompareAndSwap(nil, d) && s.opts.OnDamage != nil {
			s.opts.OnDamage(fmt.Errorf("store: %s: %w", op, d))
		}
		*err = s.damaged.Load()
	}
	if *err != nil {
		*err = fmt.Errorf("store: %s: %w", op, *err)
	}
}

// faultsPanic makes a fault while bbolt reads a page outside the mapped
// file a panic instead of a crash of the process, on the goroutine where
// db.Batch runs fn and commits: bbolt's own, which ends after the batch
// (so the setting is not restored), or the caller's, where batch restores
// it. A panic in fn is recovered by bbolt there and fn run again alone on
// the caller's goroutine, where wrap recovers it; a panic in bbolt's own
// commit code on its goroutine cannot be recovered.
func faultsPanic(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		debug.SetPanicOnFault(true)
		return fn(tx)
	}
}

// count and setCount keep the sizes of buckets in the meta bucket, because
// bbolt can only count keys by walking them.
func count(tx *bolt.Tx, key string) int {
	if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func setCount(tx *bolt.Tx, key string, n int) error {
	if n < 0 {
		n = 0
	}
	return tx.Bucket(bucketMeta).Put([]byte(key), u64(uint64(n)))
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Account implements Store.
func (s *Bolt) Account(ctx context.Context, name string) (Account, error) {
	var a Account
	err := s.view(ctx, "account "+name, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(name))
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &a)
	})
	if err != nil {
		return Account{}, err
	}
	return a, nil
}

// SaveAccount implements Store.
func (s *Bolt) SaveAccount(ctx context.Context, name string, a Account) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("store: account %s: %w", name, err)
	}
	return s.batch(ctx, "save account "+name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).Put([]byte(name), v)
	})
}

// Cursor implements Store.
func (s *Bolt) Cursor(ctx context.Context, account string) (string, error) {
	var c string
	err := s.view(ctx, "cursor of "+account, func(tx *bolt.Tx) error {
		c = string(tx.Bucket(bucketCursors).Get([]byte(account)))
		return nil
	})
	return c, err
}

// Unseen implements Store.
func (s *Bolt) Unseen(ctx context.Context, account string, ids []uint64) ([]uint64, error) {
	out := make([]uint64, 0, len(ids))
	err := s.view(ctx, "unseen ids of "+account, func(tx *bolt.Tx) error {
		seen := tx.Bucket(bucketSeen).Bucket([]byte(account))
		for _, id := range ids {
			if seen == nil || seen.Get(u64(id)) == nil {
				out = append(out, id)
			}
		}
		return nil
	})
	return out, err
}

// CommitPage implements Store.
func (s *Bolt) CommitPage(ctx context.Context, c Commit) (PageResult, error) {
	now := s.opts.Now()
	var res PageResult
	err := s.batch(ctx, "commit page of "+c.Account, func(tx *bolt.Tx) error {
		res = PageResult{}
		seen, err := tx.Bucket(bucketSeen).CreateBucketIfNotExists([]byte(c.Account))
		if err != nil {
			return err
		}
		age, err := tx.Bucket(bucketSeenAge).CreateBucketIfNotExists([]byte(c.Account))
		if err != nil {
			return err
		}
		// Only ids seen before this commit skip their items: an id given
		// twice here is one message, acted on once.
		before := make(map[uint64]bool)
		added := make(map[uint64]bool, len(c.MsgIDs))
		stamp := u64(uint64(now.UnixNano()))
		countKey := "seen_n:" + c.Account
		n := count(tx, countKey)
		for _, id := range c.MsgIDs {
			if added[id] {
				continue
			}
			k := u64(id)
			if seen.Get(k) != nil {
				before[id] = true
				continue
			}
			added[id] = true
			if err := seen.Put(k, stamp); err != nil {
				return err
			}
			if err := age.Put(append(append([]byte{}, stamp...), k...), nil); err != nil {
				return err
			}
			n++
		}
		if n, err = s.pruneSeen(seen, age, now, n); err != nil {
			return err
		}
		if err := setCount(tx, countKey, n); err != nil {
			return err
		}
		var items []Item
		for _, it := range c.Items {
			if it.MsgID != 0 && before[it.MsgID] {
				continue
			}
			items = append(items, it)
		}
		var echoes []Echo
		for _, e := range c.Echoes {
			if !before[e.ID] {
				echoes = append(echoes, e)
			}
		}
		if res.Settled, err = settleEchoes(tx, c.Account, echoes); err != nil {
			return err
		}
		if res.Items, err = s.enqueue(tx, items, now); err != nil {
			return err
		}
		if err := putCooldowns(tx, c.Cooldowns); err != nil {
			return err
		}
		if err := putPauses(tx, c.Pauses); err != nil {
			return err
		}
		if err := s.putInbound(tx, c.Skipped); err != nil {
			return err
		}
		if err := s.putLog(tx, c.Account, newLogEntries(&c, func(id uint64) bool { return before[id] }, now), now); err != nil {
			return err
		}
		return tx.Bucket(bucketCursors).Put([]byte(c.Account), []byte(c.KeyBuff))
	})
	if err != nil {
		return PageResult{}, err
	}
	return res, nil
}

// attemptedItems returns the account's items that may have reached the
// upstream, in ID order.
func attemptedItems(tx *bolt.Tx, account string) ([]Item, error) {
	idx := tx.Bucket(bucketAttempts).Bucket([]byte(account))
	if idx == nil {
		return nil, nil
	}
	ob := tx.Bucket(bucketOutbox)
	var cands []Item
	err := idx.ForEach(func(k, _ []byte) error {
		v := ob.Get(k)
		if v == nil {
			return nil
		}
		it, err := readItem(tx, k, v)
		if err != nil {
			return err
		}
		cands = append(cands, it)
		return nil
	})
	return cands, err
}

// Foreign implements Store.
func (s *Bolt) Foreign(ctx context.Context, account string, echoes []Echo) ([]int, error) {
	if len(echoes) == 0 {
		return nil, nil
	}
	var foreign []int
	err := s.view(ctx, "classify echoes of "+account, func(tx *bolt.Tx) error {
		cands, err := attemptedItems(tx, account)
		if err != nil {
			return err
		}
		_, foreign = ClassifyEchoes(cands, echoes)
		return nil
	})
	return foreign, err
}

func pauseKey(account, conv string) []byte { return []byte(account + "\x00" + conv) }

func putPauses(tx *bolt.Tx, ps []Pause) error {
	if len(ps) == 0 {
		return nil
	}
	b := tx.Bucket(bucketPauses)
	for _, p := range ps {
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := b.Put(pauseKey(p.Account, p.Conv), v); err != nil {
			return err
		}
	}
	return nil
}

// Pauses implements Store. Pauses that have ended are forgotten.
func (s *Bolt) Pauses(ctx context.Context, now time.Time) ([]Pause, error) {
	var out []Pause
	err := s.batch(ctx, "pauses", func(tx *bolt.Tx) error {
		out = out[:0]
		cur := tx.Bucket(bucketPauses).Cursor()
		for k, v := cur.First(); k != nil; {
			var p Pause
			if err := json.Unmarshal(v, &p); err != nil || !p.Until.After(now) {
				if err := cur.Delete(); err != nil {
					return err
				}
				k, v = cur.Seek(k)
				continue
			}
			out = append(out, p)
			k, v = cur.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Resume implements Store.
func (s *Bolt) Resume(ctx context.Context, account, conv string) (bool, error) {
	var found bool
	err := s.batch(ctx, "resume "+account, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPauses)
		k := pauseKey(account, conv)
		found = b.Get(k) != nil
		return b.Delete(k)
	})
	return found, err
}

// settleEchoes removes the account's attempted items that echoes prove
// delivered and returns their ids.
func settleEchoes(tx *bolt.Tx, account string, echoes []Echo) ([]uint64, error) {
	if len(echoes) == 0 {
		return nil, nil
	}
	cands, err := attemptedItems(tx, account)
	if err != nil {
		return nil, err
	}
	settled := MatchEchoes(cands, echoes)
	for _, id := range settled {
		if err := removeOutbox(tx, id); err != nil {
			return nil, err
		}
	}
	return settled, nil
}

// deliveryState is the part of an item that changes as it is delivered.
// It is kept apart from the item, which is written once, so that each
// step of a delivery writes a few dozen bytes instead of the whole item.
type deliveryState struct {
	Account     string    `json:"a"`
	State       State     `json:"s,omitempty"`
	AttemptAt   time.Time `json:"t,omitzero"`
	NewMsgID    uint64    `json:"n,omitempty"`
	DeliveredAt time.Time `json:"d,omitzero"`
	Attempts    int       `json:"c,omitempty"`
	NextAt      time.Time `json:"x,omitzero"`
	LastError   string    `json:"e,omitempty"`
}

func stateOf(it *Item) deliveryState {
	return deliveryState{Account: it.Account, State: it.State, AttemptAt: it.AttemptAt, NewMsgID: it.NewMsgID,
		DeliveredAt: it.DeliveredAt, Attempts: it.Attempts, NextAt: it.NextAt, LastError: it.LastError}
}

func (d *deliveryState) applyTo(it *Item) {
	it.State, it.AttemptAt, it.NewMsgID, it.DeliveredAt = d.State, d.AttemptAt, d.NewMsgID, d.DeliveredAt
	it.Attempts, it.NextAt, it.LastError = d.Attempts, d.NextAt, d.LastError
}

// readItem decodes the item stored under k with its delivery state.
func readItem(tx *bolt.Tx, k, v []byte) (Item, error) {
	var it Item
	if err := json.Unmarshal(v, &it); err != nil {
		return Item{}, fmt.Errorf("outbox item %d: %w", binary.BigEndian.Uint64(k), err)
	}
	if sv := tx.Bucket(bucketDelivery).Get(k); sv != nil {
		var d deliveryState
		if err := json.Unmarshal(sv, &d); err != nil {
			return Item{}, fmt.Errorf("outbox item %d: delivery state: %w", binary.BigEndian.Uint64(k), err)
		}
		d.applyTo(&it)
	}
	return it, nil
}

// putItem stores a new item in the outbox.
func putItem(tx *bolt.Tx, it *Item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Put(u64(it.ID), v); err != nil {
		return err
	}
	if it.State != StateQueued {
		return putState(tx, it)
	}
	return nil
}

// putState stores an item's delivery state and keeps the index of the
// items that may have reached the upstream.
func putState(tx *bolt.Tx, it *Item) error {
	k := u64(it.ID)
	d := stateOf(it)
	v, err := json.Marshal(&d)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketDelivery).Put(k, v); err != nil {
		return err
	}
	idx, err := tx.Bucket(bucketAttempts).CreateBucketIfNotExists([]byte(it.Account))
	if err != nil {
		return err
	}
	if it.State.Attempted() {
		return idx.Put(k, nil)
	}
	return idx.Delete(k)
}

// unindex drops an item's delivery state and its place in the index.
func unindex(tx *bolt.Tx, k []byte) error {
	states := tx.Bucket(bucketDelivery)
	v := states.Get(k)
	if v == nil {
		return nil
	}
	var d deliveryState
	if err := json.Unmarshal(v, &d); err == nil {
		if idx := tx.Bucket(bucketAttempts).Bucket([]byte(d.Account)); idx != nil {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	return states.Delete(k)
}

func putCooldowns(tx *bolt.Tx, marks []CooldownMark) error {
	b := tx.Bucket(bucketCooldown)
	for _, m := range marks {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(m.Rule+"\x00"+m.Conv), v); err != nil {
			return err
		}
	}
	return nil
}

func (s *Bolt) putInbound(tx *bolt.Tx, skipped []InboundDeadLetter) error {
	if len(skipped) == 0 {
		return nil
	}
	b := tx.Bucket(bucketInbound)
	n := count(tx, "inbound_n")
	for _, d := range skipped {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(d)
		if err != nil {
			return err
		}
		if err := b.Put(u64(id), v); err != nil {
			return err
		}
		n++
	}
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil && n > s.opts.DeadMax; k, _ = cur.First() {
		if err := cur.Delete(); err != nil {
			return err
		}
		n--
	}
	return setCount(tx, "inbound_n", n)
}

// Cooldowns implements Store. Cooldowns that have ended are forgotten.
func (s *Bolt) Cooldowns(ctx context.Context, now time.Time) ([]CooldownMark, error) {
	var out []CooldownMark
	err := s.batch(ctx, "cooldowns", func(tx *bolt.Tx) error {
		out = out[:0]
		cur := tx.Bucket(bucketCooldown).Cursor()
		for k, v := cur.First(); k != nil; {
			var m CooldownMark
			if err := json.Unmarshal(v, &m); err != nil || !m.Until.After(now) {
				if err := cur.Delete(); err != nil {
					return err
				}
				k, v = cur.Seek(k)
				continue
			}
			out = append(out, m)
			k, v = cur.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InboundDeadLetters implements Store.
func (s *Bolt) InboundDeadLetters(ctx context.Context, limit int) ([]InboundDeadLetter, error) {
	var out []InboundDeadLetter
	err := s.view(ctx, "inbound dead letters", func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketInbound).Cursor()
		for k, v := cur.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = cur.Next() {
			var d InboundDeadLetter
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pruneSeen forgets ids older than the retention, then the oldest ids past
// the per-account maximum.
func (s *Bolt) pruneSeen(seen, age *bolt.Bucket, now time.Time, n int) (int, error) {
	limit := u64(uint64(now.Add(-s.opts.SeenRetention).UnixNano()))
	cur := age.Cursor()
	for k, _ := cur.First(); k != nil; k, _ = cur.First() {
		if bytes.Compare(k[:8], limit) >= 0 && n <= s.opts.SeenMax {
			break
		}
		if err := seen.Delete(k[8:]); err != nil {
			return n, err
		}
		if err := cur.Delete(); err != nil {
			return n, err
		}
		n--
	}
	return n, nil
}

func (s *Bolt) enqueue(tx *bolt.Tx, items []Item, now time.Time) ([]Item, error) {
	if len(items) == 0 {
		return nil, nil
	}
	ob := tx.Bucket(bucketOutbox)
	meta := tx.Bucket(bucketMeta)
	n := uint64(0)
	if v := meta.Get(keyOutboxN); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	if n+uint64(len(items)) > uint64(s.opts.OutboxMax) {
		return nil, fmt.Errorf("%w: the outbox holds %d items, the limit is %d", ErrFull, n, s.opts.OutboxMax)
	}
	out := make([]Item, len(items))
	for i, it := range items {
		id, err := ob.NextSequence()
		if err != nil {
			return nil, err
		}
		it.ID = id
		if it.Created.IsZero() {
			it.Created = now
		}
		if err := putItem(tx, &it); err != nil {
			return nil, err
		}
		out[i] = it
	}
	return out, meta.Put(keyOutboxN, u64(n+uint64(len(items))))
}

// Enqueue implements Store.
func (s *Bolt) Enqueue(ctx context.Context, items []Item) ([]Item, error) {
	now := s.opts.Now()
	var out []Item
	err := s.batch(ctx, "enqueue", func(tx *bolt.Tx) error {
		var err error
		out, err = s.enqueue(tx, items, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Pending implements Store.
func (s *Bolt) Pending(ctx context.Context) ([]Item, error) {
	var out []Item
	err := s.view(ctx, "pending", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			it, err := readItem(tx, k, v)
			if err != nil {
				return err
			}
			out = append(out, it)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// removeOutbox deletes an item and keeps the outbox count.
func removeOutbox(tx *bolt.Tx, id uint64) error {
	ob := tx.Bucket(bucketOutbox)
	k := u64(id)
	if ob.Get(k) == nil {
		return nil
	}
	if err := ob.Delete(k); err != nil {
		return err
	}
	if err := unindex(tx, k); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyOutboxN); v != nil {
		if n := binary.BigEndian.Uint64(v); n > 0 {
			return meta.Put(keyOutboxN, u64(n-1))
		}
	}
	return nil
}

// Record implements Store.
func (s *Bolt) Record(ctx context.Context, c Changes) (Recorded, error) {
	now := s.opts.Now()
	var res Recorded
	err := s.batch(ctx, "record delivery states", func(tx *bolt.Tx) error {
		res = Recorded{}
		ob := tx.Bucket(bucketOutbox)
		for i := range c.Put {
			it := &c.Put[i]
			if ob.Get(u64(it.ID)) == nil {
				res.Missing = append(res.Missing, it.ID)
				continue
			}
			if err := putState(tx, it); err != nil {
				return err
			}
		}
		for _, id := range c.Remove {
			if err := removeOutbox(tx, id); err != nil {
				return err
			}
		}
		for _, d := range c.Dead {
			if ob.Get(u64(d.Item.ID)) == nil {
				res.Missing = append(res.Missing, d.Item.ID)
				continue
			}
			if err := s.kill(tx, d); err != nil {
				return err
			}
		}
		var err error
		res.Added, err = s.enqueue(tx, c.Add, now)
		return err
	})
	if err != nil {
		return Recorded{}, err
	}
	return res, nil
}

// kill moves an item from the outbox to the dead letters, keeping the
// newest DeadMax letters.
func (s *Bolt) kill(tx *bolt.Tx, d DeadLetter) error {
	if d.At.IsZero() {
		d.At = s.opts.Now()
	}
	v, err := json.Marshal(&d)
	if err != nil {
		return err
	}
	if err := removeOutbox(tx, d.Item.ID); err != nil {
		return err
	}
	dead := tx.Bucket(bucketDead)
	n := count(tx, "dead_n")
	if dead.Get(u64(d.Item.ID)) == nil {
		n++
	}
	if err := dead.Put(u64(d.Item.ID), v); err != nil {
		return err
	}
	cur := dead.Cursor()
	for k, _ := cur.First(); k != nil && n > s.opts.DeadMax; k, _ = cur.First() {
		if err := cur.Delete(); err != nil {
			return err
		}
		n--
	}
	return setCount(tx, "dead_n", n)
}

// Revive implements Store.
func (s *Bolt) Revive(ctx context.Context, id uint64) (Item, error) {
	now := s.opts.Now()
	var it Item
	err := s.batch(ctx, fmt.Sprintf("revive dead letter %d", id), func(tx *bolt.Tx) error {
		dead := tx.Bucket(bucketDead)
		v := dead.Get(u64(id))
		if v == nil {
			return ErrNotFound
		}
		var d DeadLetter
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		added, err := s.enqueue(tx, []Item{revived(d)}, now)
		if err != nil {
			return err
		}
		it = added[0]
		if err := dead.Delete(u64(id)); err != nil {
			return err
		}
		return setCount(tx, "dead_n", count(tx, "dead_n")-1)
	})
	if err != nil {
		return Item{}, err
	}
	return it, nil
}

// DropDeadLetter implements Store.
func (s *Bolt) DropDeadLetter(ctx context.Context, id uint64) error {
	return s.batch(ctx, fmt.Sprintf("drop dead letter %d", id), func(tx *bolt.Tx) error {
		dead := tx.Bucket(bucketDead)
		if dead.Get(u64(id)) == nil {
			return ErrNotFound
		}
		if err := dead.Delete(u64(id)); err != nil {
			return err
		}
		return setCount(tx, "dead_n", count(tx, "dead_n")-1)
	})
}

// DeadLetters implements Store.
func (s *Bolt) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := s.view(ctx, "dead letters", func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketDead).Cursor()
		for k, v := cur.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = cur.Next() {
			var d DeadLetter
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Session implements Store.
func (s *Bolt) Session(ctx context.Context, name string) (SessionState, error) {
	var st SessionState
	err := s.view(ctx, "session "+name, func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSessions).Get([]byte(name)); v != nil {
			return json.Unmarshal(v, &st)
		}
		return nil
	})
	if err != nil {
		return SessionState{}, err
	}
	return st, nil
}

// SaveSession implements Store.
func (s *Bolt) SaveSession(ctx context.Context, name string, st SessionState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: session %s: %w", name, err)
	}
	return s.batch(ctx, "save session "+name, func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(name), v) })
}

// Lease implements Store.
func (s *Bolt) Lease(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error) {
	now := s.opts.Now()
	var out Lease
	err := s.batch(ctx, "lease "+key, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		out = Lease{}
		if v := b.Get([]byte(key)); v != nil {
			if err := json.Unmarshal(v, &out); err != nil {
				return err
			}
			if out.Holder != holder && now.Before(out.Until) {
				return nil // someone else's, still running
			}
		}
		out = Lease{Key: key, Holder: holder, Until: now.Add(ttl)}
		v, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
	if err != nil {
		return Lease{}, err
	}
	return out, nil
}

// KV implements Store.
func (s *Bolt) KV(plugin string) KV { return &boltKV{s: s, name: []byte(plugin)} }

type boltKV struct {
	s    *Bolt
	name []byte
}

func (k *boltKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var out []byte
	var ok bool
	err := k.s.view(ctx, fmt.Sprintf("kv %s: get %q", k.name, key), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(k.name)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			out, ok = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, ok, nil
}

func (k *boltKV) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("store: kv %s: empty key", k.name)
	}
	if len(value) > k.s.opts.KVMaxValue || len(key) > 1024 {
		return fmt.Errorf("%w: kv %s: %q: value of %d bytes, the limit is %d (keys up to 1024)", ErrFull, k.name, key, len(value), k.s.opts.KVMaxValue)
	}
	return k.s.batch(ctx, fmt.Sprintf("kv %s: put %q", k.name, key), func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(k.name)
		if err != nil {
			return err
		}
		if b.Get([]byte(key)) == nil {
			countKey := "kv_n:" + string(k.name)
			n := count(tx, countKey)
			if n >= k.s.opts.KVMaxKeys {
				return fmt.Errorf("%w: it holds %d keys, the limit", ErrFull, k.s.opts.KVMaxKeys)
			}
			if err := setCount(tx, countKey, n+1); err != nil {
				return err
			}
		}
		return b.Put([]byte(key), value)
	})
}

func (k *boltKV) Delete(ctx context.Context, key string) error {
	return k.s.batch(ctx, fmt.Sprintf("kv %s: delete %q", k.name, key), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(k.name)
		if b == nil || b.Get([]byte(key)) == nil {
			return nil
		}
		countKey := "kv_n:" + string(k.name)
		if err := setCount(tx, countKey, count(tx, countKey)-1); err != nil {
			return err
		}
		return b.Delete([]byte(key))
	})
}

func (k *boltKV) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	var out []string
	err := k.s.view(ctx, fmt.Sprintf("kv %s: list %q", k.name, prefix), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(k.name)
		if b == nil {
			return nil
		}
		p := []byte(prefix)
		cur := b.Cursor()
		for key, _ := cur.Seek(p); key != nil && bytes.HasPrefix(key, p); key, _ = cur.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			out = append(out, string(key))
		}
		return nil
	})
	return out, err
}
