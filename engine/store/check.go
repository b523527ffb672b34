package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/finderbot/finderbot/sdk"
)

// ErrDamaged is wrapped by the errors of a store file that fails its checks
// (see DamagedError).
var ErrDamaged = errors.New("store: the store file is damaged")

// DamagedError is a store file that fails its checks. Open refuses it, and a
// Bolt store that finds damage in a later transaction fails that transaction
// and every one after it with this error: a damaged file is never written
// to again, nor silently replaced by an empty store.
type DamagedError struct {
	// Path is the file.
	Path string
	// Problems say what is wrong: one, or the first of the page problems
	// found, the last saying how many more there were.
	Problems []string
	// Advice says what the operator can do.
	Advice string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged: %s; %s", e.Path, strings.Join(e.Problems, "; "), e.Advice)
}

// Is makes errors.Is(err, ErrDamaged) hold.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// restoreAdvice tells the operator of the state directory dir how to get a
// store back, naming the newest snapshot when there is one.
func restoreAdvice(dir string) string {
	db := filepath.Join(dir, dbName)
	restore := fmt.Sprintf("restore a backup (made by finderbot store backup) or the newest snapshot under %s", filepath.Join(dir, snapshotDir))
	if snaps, _ := listSnapshots(filepath.Join(dir, snapshotDir)); len(snaps) > 0 {
		restore = fmt.Sprintf("restore the newest snapshot (cp %s %s) or a newer backup", snaps[len(snaps)-1].Path, db)
	}
	return fmt.Sprintf("stop finderbot and %s; or move the file aside to start over, knowing that every message the upstream still returns may then be answered again", restore)
}

// copyAdvice is the advice for a file that is not a daemon's own store (a
// backup or a snapshot).
const copyAdvice = "do not restore this copy; use another backup or snapshot"

// The bbolt file format, as far as the checks below read it: two meta pages
// at the start, each a 16-byte page header followed by the meta fields, the
// first 56 bytes of which are covered by an FNV-64a checksum.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumLen     = 56
	metaLen        = metaSumLen + 8
	noFreelist     = ^uint64(0)
)

type metaPage struct {
	magic, version, pageSize uint32
	root, freelist, pgid     uint64
	txid                     uint64
	sumOK                    bool
}

func parseMeta(b []byte) metaPage {
	m := b[pageHeaderSize : pageHeaderSize+metaLen]
	e := binary.NativeEndian // bbolt writes its structs in the machine's order
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	return metaPage{
		magic: e.Uint32(m[0:]), version: e.Uint32(m[4:]), pageSize: e.Uint32(m[8:]),
		root: e.Uint64(m[16:]), freelist: e.Uint64(m[32:]), pgid: e.Uint64(m[40:]), txid: e.Uint64(m[48:]),
		sumOK: h.Sum64() == e.Uint64(m[metaSumLen:]),
	}
}

// headerProblem checks what bbolt trusts without looking: both meta pages
// (bbolt silently falls back to the older one when the newer fails its
// checksum, losing the last commit), that the file holds every page the
// current meta page counts (bbolt maps the file and faults on a page past
// its end), and the freelist page (bbolt panics on a bad one, and a
// panicking bolt.Open leaves the file mapped and locked). It returns "" for
// a sound header.
func headerProblem(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := fi.Size()
	if size == 0 {
		return "the file is empty (0 bytes)", nil
	}
	buf := make([]byte, pageHeaderSize+metaLen)
	if size < int64(len(buf)) {
		return fmt.Sprintf("the file is %d bytes, too short for a store's meta pages", size), nil
	}
	if _, err := f.ReadAt(buf, 0); err != nil {
		return "", err
	}
	m0 := parseMeta(buf)
	if m0.magic != boltMagic {
		return "it is not a finderbot store: it does not start with a bbolt meta page", nil
	}
	if p := metaProblem(0, m0); p != "" {
		return p, nil
	}
	ps := int64(m0.pageSize)
	if ps < 512 || ps > 1<<24 || ps&(ps-1) != 0 {
		return fmt.Sprintf("meta page 0 gives a page size of %d bytes", ps), nil
	}
	if size < 2*ps {
		return fmt.Sprintf("the file is %d bytes, too short for its two meta pages of %d bytes (it was cut short)", size, ps), nil
	}
	if _, err := f.ReadAt(buf, ps); err != nil {
		return "", err
	}
	m1 := parseMeta(buf)
	if m1.magic != boltMagic {
		return "meta page 1 is not a meta page", nil
	}
	if p := metaProblem(1, m1); p != "" {
		return p, nil
	}
	if int64(m1.pageSize) != ps {
		return fmt.Sprintf("the meta pages disagree on the page size (%d and %d bytes)", ps, m1.pageSize), nil
	}
	cur, n := m0, 0
	if m1.txid > m0.txid {
		cur, n = m1, 1
	}
	if cur.pgid < 2 || cur.root >= cur.pgid || (cur.freelist != noFreelist && cur.freelist >= cur.pgid) {
		return fmt.Sprintf("meta page %d points past the store's last page", n), nil
	}
	if uint64(size)/uint64(ps) < cur.pgid {
		return fmt.Sprintf("the file is %d bytes but its pages end at %d bytes: it was cut short", size, cur.pgid*uint64(ps)), nil
	}
	if cur.freelist == noFreelist {
		return "", nil
	}
	return freelistProblem(f, cur, ps)
}

// freelistProblem checks the freelist page: its type, that its ids fit in
// its pages, and that each names a page of the store.
func freelistProblem(f *os.File, m metaPage, ps int64) (string, error) {
	off := int64(m.freelist) * ps
	head := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(head, off); err != nil {
		return "", err
	}
	e := binary.NativeEndian
	flags, count, overflow := e.Uint16(head[8:]), uint64(e.Uint16(head[10:])), uint64(e.Uint32(head[12:]))
	bad := func(what string) (string, error) {
		return fmt.Sprintf("the freelist (page %d) is damaged: %s", m.freelist, what), nil
	}
	if flags != 0x10 {
		return bad(fmt.Sprintf("its page type is %#x", flags))
	}
	if m.freelist+overflow >= m.pgid {
		return bad("it runs past the store's last page")
	}
	first := uint64(0)
	if count == 0xFFFF { // the count did not fit: it is the first id's place
		count, first = e.Uint64(head[pageHeaderSize:]), 1
	}
	room := (uint64(ps)*(overflow+1) - pageHeaderSize) / 8
	if count > room-first {
		return bad(fmt.Sprintf("it counts %d ids, its pages hold %d", count, room-first))
	}
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, off+pageHeaderSize+int64(first*8)); err != nil {
		return "", err
	}
	for i := 0; i < len(ids); i += 8 {
		if id := e.Uint64(ids[i:]); id < 2 || id >= m.pgid {
			return bad(fmt.Sprintf("it frees page %d, outside the store", id))
		}
	}
	return "", nil
}

func metaProblem(n int, m metaPage) string {
	switch {
	case m.version != boltVersion:
		return fmt.Sprintf("meta page %d holds format version %d; this finderbot reads version %d", n, m.version, boltVersion)
	case !m.sumOK:
		return fmt.Sprintf("meta page %d fails its checksum", n)
	}
	return ""
}

// openChecked opens the bbolt file at path, which must exist, and checks it
// before anything uses it: the header (headerProblem, read under a shared
// lock, so never while another process writes), then every page
// (pageProblems). A damaged file gets a *DamagedError with advice, and is
// left as it was: bbolt writes nothing when it opens a file whose header is
// sound. A file locked by another process gets bbolt's ErrTimeout. At most
// max page problems are reported.
func openChecked(path string, bopts bolt.Options, advice string, max int) (*bolt.DB, error) {
	damaged := func(problems ...string) error { return &DamagedError{Path: path, Problems: problems, Advice: advice} }
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() == 0 {
		// bbolt would make a new store of it: every message the upstream
		// still returns would be answered again.
		return nil, damaged("the file is empty (0 bytes)")
	}
	problem, err := lockedHeaderProblem(path, bopts.Timeout)
	if err != nil {
		return nil, err
	}
	if problem != "" {
		return nil, damaged(problem)
	}
	db, err := boltOpen(path, &bopts)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, err
		}
		var pe *panicError
		if errors.As(err, &pe) || errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, damaged(err.Error())
		}
		return nil, err
	}
	var problems []string
	if err := db.View(func(tx *bolt.Tx) error { problems = pageProblems(tx, max); return nil }); err != nil {
		db.Close()
		return nil, err
	}
	if len(problems) > 0 {
		db.Close()
		return nil, damaged(problems...)
	}
	return db, nil
}

// lockedHeaderProblem runs headerProblem holding a shared lock on the file,
// waiting up to timeout for a writer to let go (then bbolt's ErrTimeout).
func lockedHeaderProblem(path string, timeout time.Duration) (string, error) {
	// A named pipe or a device given as a store file is refused, never
	// waited on.
	f, err := sdk.OpenRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close() // and with it the lock
	if err := lockShared(f, timeout); err != nil {
		return "", err
	}
	return headerProblem(f)
}

// panicError is a panic inside bbolt, recovered.
type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("bbolt panicked: %v", p.v) }

// boltOpen is bolt.Open with its panics, and the faults of reading a page
// outside the mapped file, turned into errors. (After such a panic the file
// stays mapped, and so locked, until the process ends: bbolt returns no
// handle to unmap it. The header checks keep the known causes away.)
func boltOpen(path string, bopts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, &panicError{p}
		}
	}()
	return bolt.Open(path, 0o600, bopts)
}

// pageProblems checks every page the transaction reaches: it first reads
// every key and value of every bucket on this goroutine, where a page that
// points outside the file becomes an error instead of a fault, then runs
// bbolt's own consistency check (page types, references, key order, the
// freelist). It returns at most max problems, the last one saying how many
// more there were. Writers must not run meanwhile (bbolt's check reads the
// freelist without its lock).
func pageProblems(tx *bolt.Tx, max int) []string {
	if err := readAll(tx); err != nil {
		return []string{err.Error()}
	}
	var out []string
	n := 0
	for err := range tx.Check() {
		n++
		if len(out) < max {
			out = append(out, "page check: "+err.Error())
		}
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("and %d more page problems", n-len(out)))
	}
	return out
}

// readAll reads every byte of every key and value.
func readAll(tx *bolt.Tx) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading its pages failed: %v", p)
		}
	}()
	var sum byte
	err = tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
		readBucket(b, &sum)
		return nil
	})
	return err
}

func readBucket(b *bolt.Bucket, sum *byte) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		for _, x := range k {
			*sum ^= x
		}
		if v == nil {
			if child := b.Bucket(k); child != nil {
				readBucket(child, sum)
			}
			continue
		}
		for _, x := range v {
			*sum ^= x
		}
	}
}

// Report is the outcome of a store check: what the store holds, and every
// problem found.
type Report struct {
	// Path is the file checked.
	Path string `json:"path"`
	// Problems are the problems found; none means the store checks clean.
	Problems []string `json:"problems,omitempty"`
	// Accounts counts the accounts with a stored login.
	Accounts int `json:"accounts"`
	// SeenIDs counts the message ids remembered, all accounts together.
	SeenIDs int `json:"seen_ids"`
	// Outbox counts the outbox items by delivery state ("queued" for the
	// queued state).
	Outbox map[string]int `json:"outbox"`
	// DeadLetters and InboundDeadLetters count the dead letters.
	DeadLetters        int `json:"dead_letters"`
	InboundDeadLetters int `json:"inbound_dead_letters"`
	// LoggedMessages counts the messages of the conversation logs.
	LoggedMessages int `json:"logged_messages"`
}

// OK reports whether the check found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String is the report for a person: "ok" with the counts, or one line per
// problem.
func (r *Report) String() string {
	if !r.OK() {
		var b strings.Builder
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "%s: %s\n", r.Path, p)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	total, states := 0, make([]string, 0, len(r.Outbox))
	for _, st := range slices.Sorted(maps.Keys(r.Outbox)) {
		total += r.Outbox[st]
		states = append(states, fmt.Sprintf("%s %d", st, r.Outbox[st]))
	}
	outbox := fmt.Sprint(total)
	if len(states) > 0 {
		outbox += " (" + strings.Join(states, ", ") + ")"
	}
	return fmt.Sprintf("ok: %s: %d accounts, %d seen ids, outbox %s, %d dead letters, %d inbound dead letters",
		r.Path, r.Accounts, r.SeenIDs, outbox, r.DeadLetters, r.InboundDeadLetters)
}

// maxProblems bounds a report: a badly damaged file has thousands.
const maxProblems = 20

// CheckFile checks the store file at path completely: its header, every page
// (as Open does), then every record: each decodes, and the counts the store
// keeps match what they count. The file is opened read-only; a file held by
// a running daemon cannot be checked this way (bbolt's lock), and fails with
// ErrLocked. Damage is reported in the Report, not as an error; the error is
// for a file that could not be read at all.
func CheckFile(path string) (Report, error) {
	rep := Report{Path: path, Outbox: map[string]int{}}
	db, err := openChecked(path, bolt.Options{ReadOnly: true, Timeout: lockTimeout}, copyAdvice, maxProblems)
	var de *DamagedError
	switch {
	case errors.As(err, &de):
		rep.Problems = de.Problems
		return rep, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return rep, fmt.Errorf("%w: it holds %s; check it through the daemon (finderbot store check --config …), or stop it first", ErrLocked, path)
	case err != nil:
		return rep, fmt.Errorf("store: check %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("reading its records failed: %v", p))
			}
		}()
		checkRecords(tx, &rep) // openChecked found the pages sound
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("store: check %s: %w", path, err)
	}
	if len(rep.Problems) > maxProblems {
		n := len(rep.Problems) - maxProblems
		rep.Problems = append(rep.Problems[:maxProblems], fmt.Sprintf("and %d more problems", n))
	}
	return rep, nil
}

// lockTimeout is how long a read-only open waits for a running daemon's
// lock before it says the file is in use.
const lockTimeout = time.Second

// allBuckets are the top-level buckets every store has.
var allBuckets = [][]byte{bucketAccounts, bucketCursors, bucketSeen, bucketSeenAge, bucketOutbox, bucketDead, bucketKV,
	bucketMeta, bucketSessions, bucketLeases, bucketAttempts, bucketDelivery, bucketCooldown, bucketInbound}

// optionalBuckets are created by every store that opens, but a copy made
// before they existed lacks them and is no less sound.
var optionalBuckets = [][]byte{bucketLog, bucketPauses}

// checkRecords decodes every record and compares the counts kept in the
// meta bucket with what they count. It trusts the pages: pageProblems ran.
func checkRecords(tx *bolt.Tx, rep *Report) {
	bad := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			bad("bucket %s is missing", name)
		}
	}
	if len(rep.Problems) > 0 {
		return
	}
	counted := func(key string, got int) {
		if want := count(tx, key); want != got {
			bad("the meta bucket counts %d for %s, the store holds %d", want, key, got)
		}
	}
	decodeAll := func(bucket []byte, what string, v func() any) int {
		n := 0
		tx.Bucket(bucket).ForEach(func(k, val []byte) error {
			n++
			if err := json.Unmarshal(val, v()); err != nil {
				bad("%s %q does not decode: %v", what, k, err)
			}
			return nil
		})
		return n
	}
	rep.Accounts = decodeAll(bucketAccounts, "account", func() any { return new(Account) })
	decodeAll(bucketSessions, "session", func() any { return new(SessionState) })
	decodeAll(bucketLeases, "lease", func() any { return new(Lease) })
	decodeAll(bucketCooldown, "cooldown", func() any { return new(CooldownMark) })
	if tx.Bucket(bucketPauses) != nil {
		decodeAll(bucketPauses, "pause", func() any { return new(Pause) })
	}
	rep.DeadLetters = decodeAll(bucketDead, "dead letter", func() any { return new(DeadLetter) })
	counted("dead_n", rep.DeadLetters)
	rep.InboundDeadLetters = decodeAll(bucketInbound, "inbound dead letter", func() any { return new(InboundDeadLetter) })
	counted("inbound_n", rep.InboundDeadLetters)

	seen, age := tx.Bucket(bucketSeen), tx.Bucket(bucketSeenAge)
	seen.ForEachBucket(func(account []byte) error {
		n := seen.Bucket(account).Stats().KeyN
		rep.SeenIDs += n
		counted("seen_n:"+string(account), n)
		if a := age.Bucket(account); a == nil || a.Stats().KeyN != n {
			bad("the seen ids of %s and their ages disagree", account)
		}
		return nil
	})

	n := 0
	attempted := map[string]map[uint64]bool{}
	ob := tx.Bucket(bucketOutbox)
	ob.ForEach(func(k, v []byte) error {
		n++
		it, err := readItem(tx, k, v)
		if err != nil {
			bad("%v", err)
			return nil
		}
		st := string(it.State)
		if st == "" {
			st = "queued"
		}
		rep.Outbox[st]++
		if it.State.Attempted() {
			if attempted[it.Account] == nil {
				attempted[it.Account] = map[uint64]bool{}
			}
			attempted[it.Account][it.ID] = true
		}
		return nil
	})
	var outboxN int
	if v := tx.Bucket(bucketMeta).Get(keyOutboxN); v != nil {
		outboxN = int(binary.BigEndian.Uint64(v))
	}
	if outboxN != n {
		bad("the meta bucket counts %d outbox items, the store holds %d", outboxN, n)
	}
	tx.Bucket(bucketDelivery).ForEach(func(k, _ []byte) error {
		if ob.Get(k) == nil {
			bad("the delivery state of outbox item %d outlived its item", binary.BigEndian.Uint64(k))
		}
		return nil
	})
	idx := tx.Bucket(bucketAttempts)
	idx.ForEachBucket(func(account []byte) error {
		idx.Bucket(account).ForEach(func(k, _ []byte) error {
			id := binary.BigEndian.Uint64(k)
			if !attempted[string(account)][id] {
				bad("the attempts of %s list outbox item %d, which is not attempted", account, id)
			}
			delete(attempted[string(account)], id)
			return nil
		})
		return nil
	})
	for account, ids := range attempted {
		for id := range ids {
			bad("outbox item %d of %s is attempted but not in its account's attempts", id, account)
		}
	}
	kv := tx.Bucket(bucketKV)
	kv.ForEachBucket(func(plugin []byte) error {
		counted("kv_n:"+string(plugin), kv.Bucket(plugin).Stats().KeyN)
		return nil
	})
	if lb := tx.Bucket(bucketLog); lb != nil {
		lb.ForEachBucket(func(account []byte) error {
			b := lb.Bucket(account)
			n := 0
			b.ForEach(func(k, v []byte) error {
				n++
				var m LoggedMessage
				if len(k) != logKeyLen {
					bad("logged message %x of %s has a key of %d bytes, want %d", k, account, len(k), logKeyLen)
				} else if err := json.Unmarshal(v, &m); err != nil {
					bad("logged message %x of %s does not decode: %v", k, account, err)
				}
				return nil
			})
			rep.LoggedMessages += n
			counted("log_n:"+string(account), n)
			return nil
		})
	}
}
