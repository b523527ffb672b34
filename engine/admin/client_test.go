package admin

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNewClientAddresses(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1:9090": "127.0.0.1:9090",
		":9090":          "127.0.0.1:9090",
		"0.0.0.0:9090":   "127.0.0.1:9090",
		"[::]:9090":      "127.0.0.1:9090",
		"[::1]:9090":     "[::1]:9090",
		"localhost:9090": "localhost:9090",
	} {
		c, err := NewClient(addr, "", "--addr")
		if err != nil || c.Addr() != want {
			t.Errorf("NewClient(%q): %v, %v; want %s", addr, c, err, want)
		}
	}
	if _, err := NewClient("9090", "", "--addr"); err == nil || err.Error() != `admin: --addr: "9090" is not host:port` {
		t.Errorf("an address without a port: %v", err)
	}
}

// TestClientErrors: each way a call fails reads as what the operator has
// to do about it.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	addr := serve(t, New(newFake(), Options{Token: "tok-123456"}))
	none := freeAddr(t)
	for name, c := range map[string]struct {
		addr, token string
		want        string
	}{
		"no daemon":     {addr: none, want: "no finderbot daemon answers at " + none + " (admin.listen in /etc/finderbot.yaml); is it running?"},
		"no token":      {addr: addr, want: "admin: the daemon at " + addr + " requires its admin token, and none was given: set admin.token in the configuration, or pass --token"},
		"a wrong token": {addr: addr, token: "tok-654321", want: "admin: the daemon at " + addr + " refused the token given: it is not the daemon's admin.token"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cl, err := NewClient(c.addr, c.token, "admin.listen in /etc/finderbot.yaml")
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.Status(t.Context())
			if err == nil || err.Error() != c.want {
				t.Fatalf("got %v\nwant %s", err, c.want)
			}
			if got := errors.Is(err, ErrNoDaemon); got != (name == "no daemon") {
				t.Errorf("errors.Is(err, ErrNoDaemon) = %v", got)
			}
		})
	}
}

// TestClientCalls goes through every call of the client against the API of
// the fake.
func TestClientCalls(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.deadLetter(1, store.KindReply)
	f.deadLetter(2, store.KindSend)
	f.deadLetter(3, store.KindReply)
	f.report = &store.Report{Path: "x.db", SeenIDs: 4}
	f.backup = []byte("not a real store")
	c, err := NewClient(serve(t, New(f, Options{Token: "tok-123456"})), "tok-123456", "--addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	if st, err := c.Status(ctx); err != nil || st.Accounts[0].Name != "shop" {
		t.Errorf("Status: %+v, %v", st, err)
	}
	if raw, err := c.StatusJSON(ctx); err != nil || !bytes.Contains(raw, []byte(`  "accounts": [`)) {
		t.Errorf("StatusJSON: %s, %v; want the daemon's indented body", raw, err)
	}
	if dead, err := c.DeadLetters(ctx, 2); err != nil || len(dead) != 2 {
		t.Errorf("DeadLetters(2): %d, %v", len(dead), err)
	}
	if it, err := c.RetryDeadLetter(ctx, 2); err != nil || it.ID != 101 || it.Kind != store.KindSend {
		t.Errorf("RetryDeadLetter: %+v, %v", it, err)
	}
	var re *ResponseError
	if _, err := c.RetryDeadLetter(ctx, 2); !errors.As(err, &re) || re.StatusCode != 404 || !strings.Contains(err.Error(), "answered 404 Not Found: store: no such dead letter") {
		t.Errorf("RetryDeadLetter again: %v", err)
	}
	if items, err := c.RetryDeadLetters(ctx, "send"); err != nil || len(items) != 0 {
		t.Errorf("RetryDeadLetters(send): %+v, %v", items, err)
	}
	if _, err := c.RetryDeadLetters(ctx, "a&kind=reply"); err == nil || !strings.Contains(err.Error(), "is not an action kind") {
		t.Errorf("RetryDeadLetters with a kind that would smuggle a parameter: %v", err)
	}
	if err := c.DropDeadLetter(ctx, 3); err != nil {
		t.Errorf("DropDeadLetter: %v", err)
	}
	if items, err := c.RetryDeadLetters(ctx, ""); err != nil || len(items) != 1 || items[0].Kind != store.KindReply {
		t.Errorf("RetryDeadLetters(): %+v, %v", items, err)
	}
	if dead, err := c.DeadLetters(ctx, -1); err != nil || len(dead) != 0 || dead == nil {
		t.Errorf("DeadLetters after all: %v, %v; want an empty list", dead, err)
	}
	if n, err := c.Reload(ctx); err != nil || n != 2 {
		t.Errorf("Reload: %d, %v", n, err)
	}
	f.reload = errors.New("rules: r.yaml:3:11: unknown name nosuch\n    when: nosuch\n          ^")
	var reloadErr *ReloadError
	if _, err := c.Reload(ctx); !errors.As(err, &reloadErr) || reloadErr.Problems != f.reload.Error() {
		t.Errorf("Reload of broken rules: %v", err)
	}
	if rep, err := c.Check(ctx); err != nil || rep.SeenIDs != 4 {
		t.Errorf("Check: %+v, %v", rep, err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	if _, _, err := c.Backup(ctx, file); err == nil || !strings.Contains(err.Error(), "does not check clean") {
		t.Errorf("a backup that is no store: %v", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a backup that failed its check is in place: %v", err)
	}
}

func TestWriteStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	st := Status{Started: now.Add(-90 * time.Second), Rules: 3,
		Accounts: []AccountStatus{
			{Name: "shop", State: "online", WcID: "wxid_shop", LastSync: now.Add(-2 * time.Second), Messages: 19, OutboxDepth: 1},
			{Name: "mall", State: "backing_off", LastError: "upstream: refused\nsecond line"},
		},
		Sessions: []SessionStatus{{Name: "crm", Kind: "token", State: "online"}},
		Plugins:  []PluginStatus{{Name: "counter", Version: "1.0.0", State: "ready", OutputDroppedLines: 5, OutputDroppedBytes: 40}},
	}
	var b bytes.Buffer
	WriteStatus(&b, "127.0.0.1:9090", st, now)
	want := `finderbot at 127.0.0.1:9090: up 1m30s, 3 rules

ACCOUNT  STATE        WCID       LAST SYNC  MESSAGES  OUTBOX  IN DOUBT  SKIPPED  PAUSED  PROBLEM
shop     online       wxid_shop  2s ago     19        1       0         0        0
mall     backing_off  -          never      0         0       0         0        0       upstream: refused second line

SESSION  KIND   STATE   DETAIL
crm      token  online

PLUGIN   VERSION  STATE  RESTARTS  OUTPUT DROPPED     PROBLEM
counter  1.0.0    ready  0         5 lines, 40 bytes
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteDeadLetters(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	WriteDeadLetters(&b, nil)
	if b.String() != "no dead letters\n" {
		t.Errorf("none: %q", b.String())
	}
	b.Reset()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.Local)
	WriteDeadLetters(&b, []store.DeadLetter{
		{Item: store.Item{ID: 7, Kind: store.KindReply, Account: "shop", Text: "你好！有什么可以帮您？"}, Reason: "3 attempts:\trefused", At: at},
		{Item: store.Item{ID: 12, Kind: store.KindSend, Account: "shop", Text: strings.Repeat("长", 50), To: "wxid_op"}, Reason: "in doubt", At: at, InDoubt: true},
		{Item: store.Item{ID: 13, Kind: store.KindPlugin, Account: "shop", Plugin: "crm", Action: "record"}, Reason: "quarantined", At: at},
	})
	// A wide character takes two columns of the terminal: the columns
	// after the texts line up on the screen.
	long := `"` + strings.Repeat("长", 40) + `…" to wxid_op`
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n) }
	want := "ID  KIND    ACCOUNT  SINCE                IN DOUBT  " + pad("ACTION", 94-6+2) + "REASON\n" +
		"7   reply   shop     2026-11-20 09:00:00  no        " + pad(`"你好！有什么可以帮您？"`, 94-24+2) + "3 attempts: refused\n" +
		"12  send    shop     2026-11-20 09:00:00  yes       " + pad(long, 2) + "in doubt\n" +
		"13  plugin  shop     2026-11-20 09:00:00  no        " + pad("crm.record", 94-10+2) + "quarantined\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
