package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/finderbot/finderbot/sdk/sdktest"
)

// fill commits ids 1..n for account shop, in pages of 500, with a few outbox
// items in each delivery state and a dead letter, so that the file has
// branch pages, leaf pages and records of every kind.
func fill(t testing.TB, s *Bolt, n int) {
	t.Helper()
	ctx := context.Background()
	for lo := 1; lo <= n; lo += 500 {
		ids := make([]uint64, 0, 500)
		for id := lo; id < lo+500 && id <= n; id++ {
			ids = append(ids, uint64(id))
		}
		if _, err := s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: fmt.Sprintf("k%d", lo), MsgIDs: ids}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Enqueue(ctx, []Item{
		{Account: "shop", Kind: KindReply, Text: "a"}, {Account: "shop", Kind: KindReply, Text: "b"},
		{Account: "shop", Kind: KindSend, Text: "c"}, {Account: "shop", Kind: KindSend, Text: "d"},
	})
	if err != nil {
		t.Fatal(err)
	}
	items[0].State, items[1].State = StateInDoubt, StateAttempting
	if _, err := s.Record(ctx, Changes{Put: items[:2], Dead: []DeadLetter{{Item: items[2], Reason: "gave up"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAccount(ctx, "shop", Account{WcID: "wxid_1"}); err != nil {
		t.Fatal(err)
	}
}

var (
	goodOnce sync.Once
	goodFile []byte
)

// goodStore returns the bytes of a closed, sound store file holding 5,000
// seen ids and some of everything else.
func goodStore(t *testing.T) []byte {
	t.Helper()
	goodOnce.Do(func() {
		dir := t.TempDir()
		s, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, s, 5000)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if goodFile, err = os.ReadFile(filepath.Join(dir, dbName)); err != nil {
			t.Fatal(err)
		}
	})
	if goodFile == nil {
		t.Fatal("no sound store file to damage")
	}
	return bytes.Clone(goodFile)
}

// layout is what the damage cases need to know of a sound file.
type layout struct {
	pageSize int
	hwm      int // the end of the last page in use
	branch   int // the offset of the seen bucket's root, a branch page
	leaf     int // the offset of that branch's first child, a leaf page
}

func layoutOf(t *testing.T, data []byte) layout {
	t.Helper()
	path := filepath.Join(t.TempDir(), dbName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var l layout
	db.View(func(tx *bolt.Tx) error {
		l.pageSize = db.Info().PageSize
		l.hwm = int(tx.Size())
		l.branch = int(tx.Bucket(bucketSeen).Bucket([]byte("shop")).Root()) * l.pageSize
		return nil
	})
	if flags := binary.NativeEndian.Uint16(data[l.branch+8:]); flags != 0x01 {
		t.Fatalf("the seen bucket's root has flags %#x, not a branch page: fill more ids", flags)
	}
	// The first branch element: pos, ksize, then the child's page id.
	l.leaf = int(binary.NativeEndian.Uint64(data[l.branch+pageHeaderSize+8:])) * l.pageSize
	if flags := binary.NativeEndian.Uint16(data[l.leaf+8:]); flags != 0x02 {
		t.Fatalf("the first child has flags %#x, not a leaf page", flags)
	}
	return l
}

func flip(data []byte, off int) []byte {
	data[off] ^= 0x5a
	return data
}

// damageCases are real files a store must refuse, each with what the one
// error must say.
func damageCases(t *testing.T) map[string]struct {
	data []byte
	want string
} {
	good := goodStore(t)
	l := layoutOf(t, good)
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	return map[string]struct {
		data []byte
		want string
	}{
		"empty file":             {nil, "the file is empty (0 bytes)"},
		"one byte":               {good[:1], "the file is 1 bytes, too short for a store's meta pages"},
		"one meta page":          {good[:l.pageSize+100], "too short for its two meta pages"},
		"cut in half":            {good[:l.hwm/2], "it was cut short"},
		"one page short":         {good[:l.hwm-l.pageSize], "it was cut short"},
		"one byte short":         {good[:l.hwm-1], "it was cut short"},
		"meta page 0 flipped":    {flip(goodStore(t), pageHeaderSize+40), "meta page 0 fails its checksum"},
		"meta page 1 flipped":    {flip(goodStore(t), l.pageSize+pageHeaderSize+40), "meta page 1 fails its checksum"},
		"branch page flipped":    {flip(goodStore(t), l.branch+pageHeaderSize+8), "page"},
		"leaf page key flipped":  {flip(goodStore(t), l.leaf+pageHeaderSize+16*3+4), "page check"},
		"leaf page type flipped": {flip(goodStore(t), l.leaf+8), "page"},
		"random bytes":           {random, "it is not a finderbot store"},
		"text file":              {[]byte(strings.Repeat("state_dir: ./data\nupstream: {base_url: sim}\n", 10)), "it is not a finderbot store"},
	}
}

// TestOpenRefusesDamagedFiles damages real store files and opens them: each
// must be refused with one error naming the file, what is wrong and what to
// do, without a panic, and left byte for byte as it was.
func TestOpenRefusesDamagedFiles(t *testing.T) {
	t.Parallel()
	for name, c := range damageCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, dbName)
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// A directory open to others is made private, but a refused
			// store is refused in its one line: nothing is logged.
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			s, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&log, nil))})
			if log.Len() > 0 {
				t.Errorf("a refused open logged:\n%s", log.String())
			}
			if err == nil {
				s.Close()
				t.Fatal("a damaged store was opened")
			}
			msg := err.Error()
			for _, want := range []string{"store: " + path + " is damaged: ", c.want, "restore", "move the file aside to start over"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q:\n%s", want, msg)
				}
			}
			if !errors.Is(err, ErrDamaged) || strings.Contains(msg, "\n") {
				t.Errorf("want one line wrapping ErrDamaged, got:\n%s", msg)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(after, c.data) {
				t.Errorf("the damaged file was changed (%d bytes, was %d): %v", len(after), len(c.data), rerr)
			}
			rep, err := CheckFile(path)
			if err != nil || rep.OK() || !strings.Contains(rep.String(), c.want) {
				t.Errorf("CheckFile = %v, %v; want a problem saying %q", rep.String(), err, c.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, c.data) {
				t.Error("CheckFile changed the file")
			}
		})
	}
}

// TestDamageFoundLaterStopsTheStore damages pages under an open store: the
// transaction that meets them fails with the damage, naming the operation,
// instead of a bbolt panic or a fault killing the process; OnDamage hears
// of it once; and no call touches the file again.
func TestDamageFoundLaterStopsTheStore(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(data []byte, l layout) (off int, b []byte){
		// A page that is no longer a leaf or a branch: bbolt panics.
		"page type": func(data []byte, l layout) (int, []byte) {
			return l.leaf + 8, []byte{0x10, 0}
		},
		// A child past the mapped file (within what bbolt can address):
		// reading it faults.
		"page id out of the file": func(data []byte, l layout) (int, []byte) {
			b := make([]byte, 8)
			binary.NativeEndian.PutUint64(b, 1<<30)
			return l.branch + pageHeaderSize + 8, b
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			var reported []error
			var mu sync.Mutex
			s, err := Open(dir, Options{NoSync: true, OnDamage: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fill(t, s, 5000)
			path := filepath.Join(dir, dbName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			off, b := damage(data, layoutOf(t, data))
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(b, int64(off)); err != nil {
				t.Fatal(err)
			}
			f.Close()

			_, err = s.Unseen(ctx, "shop", []uint64{1, 2, 3})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "store: unseen ids of shop: "+path+" is damaged: bbolt panicked") {
				t.Fatalf("unseen on a damaged page: %v", err)
			}
			data, _ = os.ReadFile(path)
			_, err = s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: "next", MsgIDs: []uint64{9999}})
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "store: commit page of shop: "+path+" is damaged") {
				t.Fatalf("a commit after the damage: %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Error("the store wrote to the file after it found damage")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 1 || !errors.Is(reported[0], ErrDamaged) {
				t.Errorf("OnDamage heard %v, want the damage once", reported)
			}
		})
	}
}

// TestCheckFileCountsAndFindsBadRecords checks a sound file (ok, with its
// counts), then files whose pages are sound but whose records are not.
func TestCheckFileCountsAndFindsBadRecords(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), dbName)
	if err := os.WriteFile(path, goodStore(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// A copy made before the conversation log existed has no bucket for
	// it, and is sound.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLog) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep, err := CheckFile(path)
	want := "ok: " + path + ": 1 accounts, 5000 seen ids, outbox 3 (attempting 1, in_doubt 1, queued 1), 1 dead letters, 0 inbound dead letters"
	if err != nil || rep.String() != want {
		t.Fatalf("CheckFile = %q, %v\nwant %q", rep.String(), err, want)
	}
	for name, c := range map[string]struct {
		edit func(tx *bolt.Tx) error
		want string
	}{
		"an outbox item that does not decode": {func(tx *bolt.Tx) error {
			return tx.Bucket(bucketOutbox).Put(u64(4), []byte("{not json"))
		}, "outbox item 4: "},
		"a count that disagrees": {func(tx *bolt.Tx) error {
			return setCount(tx, "dead_n", 7)
		}, "the meta bucket counts 7 for dead_n, the store holds 1"},
		"an attempted item missing from its index": {func(tx *bolt.Tx) error {
			return tx.Bucket(bucketAttempts).Bucket([]byte("shop")).Delete(u64(1))
		}, "outbox item 1 of shop is attempted but not in its account's attempts"},
		"a missing bucket": {func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketLeases)
		}, "bucket leases is missing"},
		"a logged message that does not decode": {func(tx *bolt.Tx) error {
			b, err := tx.Bucket(bucketLog).CreateBucketIfNotExists([]byte("shop"))
			if err != nil {
				return err
			}
			if err := setCount(tx, "log_n:shop", 1); err != nil {
				return err
			}
			return b.Put(make([]byte, logKeyLen), []byte("{not json"))
		}, "logged message 00000000000000000000000000000000 of shop does not decode"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), dbName)
			if err := os.WriteFile(path, goodStore(t), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(c.edit); err != nil {
				t.Fatal(err)
			}
			db.Close()
			rep, err := CheckFile(path)
			if err != nil || rep.OK() || !strings.Contains(rep.String(), c.want) {
				t.Errorf("CheckFile = %q, %v; want a problem saying %q", rep.String(), err, c.want)
			}
		})
	}
}

// TestCheckFileFindsNoProblemInAStoreInUse runs every kind of write, then
// checks the file: the record checks hold of what the store writes.
func TestCheckFileFindsNoProblemInAStoreInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{NoSync: true, NoBatch: true, SeenMax: 300, DeadMax: 3, KVMaxKeys: 5, LogMax: 50})
	fill(t, s, 1000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		pending, err := s.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var c Changes
		for _, it := range pending {
			switch rng.IntN(6) {
			case 0:
				c.Remove = append(c.Remove, it.ID)
			case 1:
				c.Dead = append(c.Dead, DeadLetter{Item: it, Reason: "x"})
			case 2:
				it.State = []State{StateAttempting, StateInDoubt, StateDelivered, StateQueued}[rng.IntN(4)]
				c.Put = append(c.Put, it)
			}
		}
		c.Add = []Item{{Account: "shop", Kind: KindReply, Text: "t", Conversation: "c"}}
		if _, err := s.Record(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitPage(ctx, Commit{Account: "shop", MsgIDs: []uint64{uint64(10_000 + i)},
			Items:  []Item{{Account: "shop", Kind: KindReply, Text: "t", Conversation: "c", MsgID: uint64(10_000 + i)}},
			Echoes: []Echo{{ID: uint64(20_000 + i), Text: "t"}}, Skipped: []InboundDeadLetter{{Account: "shop", Reason: "no id"}},
			Log: []LoggedMessage{{ID: uint64(10_000 + i), Conversation: fmt.Sprint(i % 7), Text: "t"}},
		}); err != nil {
			t.Fatal(err)
		}
		if dead, _ := s.DeadLetters(ctx, 1); len(dead) > 0 && i%2 == 0 {
			if _, err := s.Revive(ctx, dead[0].Item.ID); err != nil {
				t.Fatal(err)
			}
		}
		kv := s.KV("p")
		kv.Put(ctx, fmt.Sprint(rng.IntN(8)), []byte("v"))
		kv.Delete(ctx, fmt.Sprint(rng.IntN(8)))
	}
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("a store in use does not check clean: %v\n%s", err, rep.String())
	}
	if rep.LoggedMessages != 50 {
		t.Errorf("the check counts %d logged messages, want 50", rep.LoggedMessages)
	}
}

// BenchmarkOpenCheck measures the check Open runs at every start, on a
// store of 100,000 seen ids; BenchmarkCheckFile the complete one.
func BenchmarkOpenCheck(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, s, 100_000)
	s.Close()
	fi, _ := os.Stat(filepath.Join(dir, dbName))
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if rep, err := CheckFile(filepath.Join(dir, dbName)); err != nil || !rep.OK() {
				b.Fatal(rep.String(), err)
			}
		}
	})
}

// TestCheckFileRefusesWhatIsNotAFile hands the check a named pipe and a
// link to /dev/zero: each is refused at once by name, never waited on or
// read without end.
func TestCheckFileRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	nf := sdktest.MakeNotFiles(t, t.TempDir(), "finderbot.db", nil, 1<<20)
	for name, path := range map[string]string{"named pipe": nf.NamedPipe, "link to /dev/zero": nf.DevZero} {
		var err error
		sdktest.Returns(t, 10*time.Second, func() { _, err = CheckFile(path) })
		if err == nil || !strings.Contains(err.Error(), path+" is not a regular file") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
