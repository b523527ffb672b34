package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is a Store held in memory, with the transactional semantics of the
// bbolt store: every method is atomic, and a failed one changes nothing. It
// keeps nothing across a process restart; the deterministic simulation uses
// it to model one (the store outlives the daemon's in-memory state), and
// tests use it where a file is not the point. It forgets seen message ids
// as the bbolt store does: in each page commit, those first seen longer
// than SeenRetention before the commit's time, then the oldest past
// SeenMax per account. Only the time its clock gives decides, so a store
// that replays an event log with the events' times forgets the same ids
// on every replica.
type Memory struct {
	opts Options

	mu        sync.Mutex
	accounts  map[string]Account
	sessions  map[string]SessionState
	leases    map[string]Lease
	cursors   map[string]string
	seen      map[string]*seenIDs
	outbox    map[uint64]Item
	nextID    uint64
	dead      map[uint64]DeadLetter
	inbound   []InboundDeadLetter
	cooldowns map[string]CooldownMark
	pauses    map[string]Pause
	kv        map[string]map[string][]byte
	log       map[string][]LoggedMessage // by account, oldest first
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store bounded by opts like Open's.
func NewMemory(opts Options) *Memory {
	opts.defaults()
	return &Memory{
		opts: opts, accounts: map[string]Account{}, sessions: map[string]SessionState{}, leases: map[string]Lease{},
		cursors: map[string]string{}, seen: map[string]*seenIDs{}, outbox: map[uint64]Item{},
		dead: map[uint64]DeadLetter{}, cooldowns: map[string]CooldownMark{}, pauses: map[string]Pause{}, kv: map[string]map[string][]byte{},
		log: map[string][]LoggedMessage{},
	}
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

// SetNextID makes the next item the store assigns an ID take id+1, the one
// after id+2, and so on. A store that replays an event log gives an event's
// items IDs derived from the event's position in the log, so that every
// replica of the log assigns the same IDs.
func (m *Memory) SetNextID(id uint64) {
	m.mu.Lock()
	m.nextID = id
	m.mu.Unlock()
}

// Account implements Store.
func (m *Memory) Account(ctx context.Context, name string) (Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accounts[name], ctx.Err()
}

// SaveAccount implements Store.
func (m *Memory) SaveAccount(ctx context.Context, name string, a Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accounts[name] = a
	return nil
}

// Cursor implements Store.
func (m *Memory) Cursor(ctx context.Context, account string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[account], ctx.Err()
}

// Unseen implements Store.
func (m *Memory) Unseen(ctx context.Context, account string, ids []uint64) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if !m.seen[account].has(id) {
			out = append(out, id)
		}
	}
	return out, ctx.Err()
}

// CommitPage implements Store.
func (m *Memory) CommitPage(ctx context.Context, c Commit) (PageResult, error) {
	if err := ctx.Err(); err != nil {
		return PageResult{}, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.seen[c.Account]
	before := map[uint64]bool{}
	for _, id := range c.MsgIDs {
		if seen.has(id) {
			before[id] = true
		}
	}
	var items []Item
	for _, it := range c.Items {
		if it.MsgID == 0 || !before[it.MsgID] {
			items = append(items, it)
		}
	}
	if err := m.roomFor(len(items)); err != nil {
		return PageResult{}, fmt.Errorf("store: commit page of %s: %w", c.Account, err)
	}
	// Nothing can fail past this point: the commit is whole.
	if seen == nil {
		seen = &seenIDs{at: map[uint64]int64{}}
		m.seen[c.Account] = seen
	}
	seen.add(c.MsgIDs, now.UnixNano())
	seen.prune(now.Add(-m.opts.SeenRetention).UnixNano(), m.opts.SeenMax)
	var echoes []Echo
	for _, e := range c.Echoes {
		if !before[e.ID] {
			echoes = append(echoes, e)
		}
	}
	var res PageResult
	if len(echoes) > 0 {
		var cands []Item
		for _, it := range m.sortedOutbox() {
			if it.Account == c.Account && it.State.Attempted() {
				cands = append(cands, it)
			}
		}
		res.Settled = MatchEchoes(cands, echoes)
		for _, id := range res.Settled {
			delete(m.outbox, id)
		}
	}
	res.Items = m.enqueue(items, now)
	for _, mk := range c.Cooldowns {
		m.cooldowns[mk.Rule+"\x00"+mk.Conv] = mk
	}
	for _, p := range c.Pauses {
		m.pauses[p.Account+"\x00"+p.Conv] = p
	}
	m.inbound = append(m.inbound, c.Skipped...)
	if over := len(m.inbound) - m.opts.DeadMax; over > 0 {
		m.inbound = slices.Delete(m.inbound, 0, over)
	}
	m.putLog(c.Account, newLogEntries(&c, func(id uint64) bool { return before[id] }, now), now)
	m.cursors[c.Account] = c.KeyBuff
	return res, nil
}

// seenIDs are one account's seen message ids, each with the time it was
// first seen, kept oldest first (by time, then id, as the bbolt store's
// age index orders them) so that the bounds forget the ids bolt would.
type seenIDs struct {
	at    map[uint64]int64 // id -> when first seen, in Unix nanoseconds
	order []seenMark       // order[head:] are the ids held, oldest first
	head  int
}

// seenMark is one seen id and when it was first seen.
type seenMark struct {
	At int64  `json:"t"`
	ID uint64 `json:"id"`
}

func (s *seenIDs) has(id uint64) bool {
	if s == nil {
		return false
	}
	_, ok := s.at[id]
	return ok
}

func (s *seenIDs) len() int { return len(s.order) - s.head }

func compareMarks(a, b seenMark) int {
	return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.ID, b.ID))
}

// add remembers the ids not held yet as first seen at stamp. A page's
// ids come after those already held unless the clock went back; only
// then does an id go in the middle.
func (s *seenIDs) add(ids []uint64, stamp int64) {
	var fresh []seenMark
	for _, id := range ids {
		if _, ok := s.at[id]; !ok {
			s.at[id] = stamp
			fresh = append(fresh, seenMark{At: stamp, ID: id})
		}
	}
	slices.SortFunc(fresh, compareMarks)
	for i, mk := range fresh {
		if s.len() == 0 || compareMarks(s.order[len(s.order)-1], mk) < 0 {
			s.order = append(s.order, fresh[i:]...)
			return
		}
		at, _ := slices.BinarySearchFunc(s.order[s.head:], mk, compareMarks)
		s.order = slices.Insert(s.order, s.head+at, mk)
	}
}

// prune forgets the ids first seen before limit, then the oldest past max.
func (s *seenIDs) prune(limit int64, max int) {
	for s.len() > 0 && (s.order[s.head].At < limit || s.len() > max) {
		delete(s.at, s.order[s.head].ID)
		s.head++
	}
	// The forgotten marks are let go once they are half the slice, so
	// that each is copied at most once on average.
	if s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

// putLog appends entries to the account's log and drops its messages past
// LogMax and older than LogMaxAge, as the bbolt store does.
func (m *Memory) putLog(account string, entries []LoggedMessage, now time.Time) {
	if len(entries) == 0 {
		return
	}
	keep := m.opts.LogMax
	if keep < 0 {
		keep, entries = 0, nil
	}
	log := append(m.log[account], entries...)
	expired := now.Add(-m.opts.LogMaxAge)
	drop := 0
	for drop < len(log) && (len(log)-drop > keep || !log[drop].Logged.After(expired)) {
		drop++
	}
	m.log[account] = slices.Delete(log, 0, drop)
}

// Conversations implements Store.
func (m *Memory) Conversations(ctx context.Context, account string, limit int) ([]Conversation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	log := slices.Clone(m.log[account])
	m.mu.Unlock()
	return conversations(log, now.Add(-m.opts.LogMaxAge), limit), nil
}

func (m *Memory) roomFor(n int) error {
	if n > 0 && len(m.outbox)+n > m.opts.OutboxMax {
		return fmt.Errorf("%w: the outbox holds %d items, the limit is %d", ErrFull, len(m.outbox), m.opts.OutboxMax)
	}
	return nil
}

func (m *Memory) enqueue(items []Item, now time.Time) []Item {
	if len(items) == 0 {
		return nil
	}
	out := make([]Item, len(items))
	for i, it := range items {
		m.nextID++
		it.ID = m.nextID
		if it.Created.IsZero() {
			it.Created = now
		}
		m.outbox[it.ID] = it
		out[i] = it
	}
	return out
}

func (m *Memory) sortedOutbox() []Item {
	out := make([]Item, 0, len(m.outbox))
	for _, it := range m.outbox {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Enqueue implements Store.
func (m *Memory) Enqueue(ctx context.Context, items []Item) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.roomFor(len(items)); err != nil {
		return nil, fmt.Errorf("store: enqueue: %w", err)
	}
	return m.enqueue(items, m.opts.Now()), nil
}

// Pending implements Store.
func (m *Memory) Pending(ctx context.Context) ([]Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sortedOutbox(), ctx.Err()
}

// Record implements Store.
func (m *Memory) Record(ctx context.Context, c Changes) (Recorded, error) {
	if err := ctx.Err(); err != nil {
		return Recorded{}, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.roomFor(len(c.Add)); err != nil {
		return Recorded{}, fmt.Errorf("store: record delivery states: %w", err)
	}
	var res Recorded
	for _, it := range c.Put {
		if _, ok := m.outbox[it.ID]; !ok {
			res.Missing = append(res.Missing, it.ID)
			continue
		}
		m.outbox[it.ID] = it
	}
	for _, id := range c.Remove {
		delete(m.outbox, id)
	}
	for _, d := range c.Dead {
		if _, ok := m.outbox[d.Item.ID]; !ok {
			res.Missing = append(res.Missing, d.Item.ID)
			continue
		}
		delete(m.outbox, d.Item.ID)
		if d.At.IsZero() {
			d.At = now
		}
		m.dead[d.Item.ID] = d
		if len(m.dead) > m.opts.DeadMax {
			delete(m.dead, slices.Min(mapKeys(m.dead)))
		}
	}
	res.Added = m.enqueue(c.Add, now)
	return res, nil
}

func mapKeys[V any](mp map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	return out
}

// Cooldowns implements Store.
func (m *Memory) Cooldowns(ctx context.Context, now time.Time) ([]CooldownMark, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return running(m.cooldowns, func(mk CooldownMark) time.Time { return mk.Until }, now), ctx.Err()
}

// Foreign implements Store.
func (m *Memory) Foreign(ctx context.Context, account string, echoes []Echo) ([]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cands []Item
	for _, it := range m.sortedOutbox() {
		if it.Account == account && it.State.Attempted() {
			cands = append(cands, it)
		}
	}
	_, foreign := ClassifyEchoes(cands, echoes)
	return foreign, ctx.Err()
}

// Pauses implements Store.
func (m *Memory) Pauses(ctx context.Context, now time.Time) ([]Pause, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return running(m.pauses, func(p Pause) time.Time { return p.Until }, now), ctx.Err()
}

// running returns the values of mp still running at now, by key, and
// forgets the others, as the bbolt store's cursors do.
func running[V any](mp map[string]V, until func(V) time.Time, now time.Time) []V {
	keys := make([]string, 0, len(mp))
	for k, v := range mp {
		if !until(v).After(now) {
			delete(mp, k)
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = mp[k]
	}
	return out
}

// Resume implements Store.
func (m *Memory) Resume(ctx context.Context, account, conv string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := account + "\x00" + conv
	_, ok := m.pauses[k]
	delete(m.pauses, k)
	return ok, ctx.Err()
}

// InboundDeadLetters implements Store.
func (m *Memory) InboundDeadLetters(ctx context.Context, limit int) ([]InboundDeadLetter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.inbound
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return slices.Clone(out), ctx.Err()
}

// Revive implements Store.
func (m *Memory) Revive(ctx context.Context, id uint64) (Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dead[id]
	if !ok {
		return Item{}, fmt.Errorf("store: revive dead letter %d: %w", id, ErrNotFound)
	}
	if err := m.roomFor(1); err != nil {
		return Item{}, fmt.Errorf("store: revive dead letter %d: %w", id, err)
	}
	delete(m.dead, id)
	return m.enqueue([]Item{revived(d)}, m.opts.Now())[0], ctx.Err()
}

// DropDeadLetter implements Store.
func (m *Memory) DropDeadLetter(ctx context.Context, id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.dead[id]; !ok {
		return fmt.Errorf("store: drop dead letter %d: %w", id, ErrNotFound)
	}
	delete(m.dead, id)
	return ctx.Err()
}

// DeadLetters implements Store.
func (m *Memory) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := mapKeys(m.dead)
	slices.Sort(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]DeadLetter, len(ids))
	for i, id := range ids {
		out[i] = m.dead[id]
	}
	return out, ctx.Err()
}

// Session implements Store.
func (m *Memory) Session(ctx context.Context, name string) (SessionState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[name], ctx.Err()
}

// SaveSession implements Store.
func (m *Memory) SaveSession(ctx context.Context, name string, s SessionState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[name] = s
	return nil
}

// Lease implements Store.
func (m *Memory) Lease(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[key]; ok && l.Holder != holder && now.Before(l.Until) {
		return l, nil
	}
	l := Lease{Key: key, Holder: holder, Until: now.Add(ttl)}
	m.leases[key] = l
	return l, nil
}

// KV implements Store.
func (m *Memory) KV(plugin string) KV { return &memoryKV{m: m, name: plugin} }

type memoryKV struct {
	m    *Memory
	name string
}

func (k *memoryKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	v, ok := k.m.kv[k.name][key]
	return bytes.Clone(v), ok, ctx.Err()
}

func (k *memoryKV) Put(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("store: kv %s: empty key", k.name)
	}
	if len(value) > k.m.opts.KVMaxValue || len(key) > 1024 {
		return fmt.Errorf("%w: kv %s: %q: value of %d bytes, the limit is %d (keys up to 1024)", ErrFull, k.name, key, len(value), k.m.opts.KVMaxValue)
	}
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	space := k.m.kv[k.name]
	if space == nil {
		space = map[string][]byte{}
		k.m.kv[k.name] = space
	}
	if _, ok := space[key]; !ok && len(space) >= k.m.opts.KVMaxKeys {
		return fmt.Errorf("%w: kv %s holds %d keys, the limit", ErrFull, k.name, k.m.opts.KVMaxKeys)
	}
	space[key] = bytes.Clone(value)
	return ctx.Err()
}

func (k *memoryKV) Delete(ctx context.Context, key string) error {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	delete(k.m.kv[k.name], key)
	return ctx.Err()
}

func (k *memoryKV) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	var out []string
	for key := range k.m.kv[k.name] {
		if strings.HasPrefix(key, prefix) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, ctx.Err()
}
