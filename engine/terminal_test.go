package engine

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// watchedBuffer is a buffer written from many goroutines that a test can
// wait on. Like a slow terminal, it lets other goroutines run after each
// write, which is when a drawing made of many writes gets cut.
type watchedBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	more chan struct{} // closed and replaced at every write
}

func newWatchedBuffer() *watchedBuffer { return &watchedBuffer{more: make(chan struct{})} }

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	close(w.more)
	w.more = make(chan struct{})
	n, err := w.b.Write(p)
	w.mu.Unlock()
	runtime.Gosched()
	return n, err
}

func (w *watchedBuffer) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// waitFor waits until ok holds of the buffer's content.
func (w *watchedBuffer) waitFor(t *testing.T, what string, ok func(string) bool) {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		w.mu.Lock()
		s, more := w.b.String(), w.more
		w.mu.Unlock()
		if ok(s) {
			return
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("no %s within 20s:\n%s", what, s)
		}
	}
}

// TestQRCodesAreDrawnWhole runs a daemon whose accounts all log in with a
// QR code at once, the log and the codes sharing one stream as they do in
// `finderbot run`: every code is on it in one piece, its header line
// first, no log line inside it.
func TestQRCodesAreDrawnWhole(t *testing.T) {
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	defer srv.Close()
	const n = 12
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("{name: shop%02d}", i)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), greetRules)
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf("state_dir: ./state\nupstream: {base_url: %q, account: %q, password: %q}\naccounts: [%s]\nrules: [./rules.yaml]\nadmin: {listen: \"\"}\n",
		srv.URL, sim.DefaultAccount, sim.DefaultPassword, strings.Join(names, ", ")))

	out := newWatchedBuffer()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfgPath, out, out, nil) }()
	out.waitFor(t, fmt.Sprintf("%d synced seed pages", n), func(s string) bool { return strings.Count(s, `msg="page synced"`) >= n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	log := out.String()
	headers := regexp.MustCompile(`Account (\S+): scan with WeChat, or open (\S+)\n`).FindAllStringSubmatch(log, -1)
	if len(headers) != n {
		t.Fatalf("%d QR codes drawn, want %d:\n%s", len(headers), n, log)
	}
	var cut []string
	for _, h := range headers {
		if !strings.Contains(log, string(session.DrawQR(h[1], h[2]))) {
			cut = append(cut, h[1])
		}
	}
	if len(cut) > 0 {
		t.Errorf("the QR codes of %s are not in one piece:\n%s", strings.Join(cut, ", "), log)
	}
}
