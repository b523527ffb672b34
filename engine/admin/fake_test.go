package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/finderbot/finderbot/engine/store"
)

// fake is a Backend holding what the tests give it.
type fake struct {
	mu        sync.Mutex
	status    Status
	notOnline []string
	dead      []store.DeadLetter
	inbound   []store.InboundDeadLetter
	retried   []uint64
	// bounded makes RetryDeadLetter fail with store.ErrFull once room
	// dead letters have been retried.
	bounded bool
	room    int
	// vanish are dead letters listed but gone by the time they are
	// retried, as when another request dropped them meanwhile.
	vanish   map[uint64]bool
	backup   []byte // nil: the store cannot be backed up
	report   *store.Report
	sessions map[string]bool // name: waiting for a code
	codes    []string
	plugins  map[string]error // nil: none configured
	rules    int
	reload   error
	nextID   uint64
	paused   []store.Pause
}

func newFake() *fake {
	return &fake{
		status:   Status{Rules: 2, Accounts: []AccountStatus{{Name: "shop", State: "online"}}},
		sessions: map[string]bool{"shop": true, "crm": false},
		rules:    2,
		nextID:   100,
	}
}

// deadLetter adds a dead letter of item id and kind.
func (f *fake) deadLetter(id uint64, kind string) {
	f.dead = append(f.dead, store.DeadLetter{Item: store.Item{ID: id, Kind: kind, Account: "shop", Text: "你好"}, Reason: "refused"})
}

func (f *fake) Status() Status { f.mu.Lock(); defer f.mu.Unlock(); return f.status }

func (f *fake) NotOnline() []string { f.mu.Lock(); defer f.mu.Unlock(); return f.notOnline }

func (f *fake) DeadLetters(_ context.Context, limit int) ([]store.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.dead)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fake) take(id uint64) (store.DeadLetter, bool) {
	i := slices.IndexFunc(f.dead, func(d store.DeadLetter) bool { return d.Item.ID == id })
	if i < 0 || f.vanish[id] {
		return store.DeadLetter{}, false
	}
	d := f.dead[i]
	f.dead = slices.Delete(f.dead, i, i+1)
	return d, true
}

func (f *fake) RetryDeadLetter(_ context.Context, id uint64) (store.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bounded && len(f.retried) >= f.room {
		return store.Item{}, store.ErrFull
	}
	d, ok := f.take(id)
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	f.retried = append(f.retried, id)
	it := d.Item
	f.nextID++
	it.ID = f.nextID
	return it, nil
}

func (f *fake) DropDeadLetter(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.take(id); !ok {
		return store.ErrNotFound
	}
	return nil
}

func (f *fake) InboundDeadLetters(context.Context, int) ([]store.InboundDeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inbound, nil
}

func (f *fake) BackupStore(_ context.Context, w io.Writer, begin func(int64)) (int64, error) {
	if f.backup == nil {
		return 0, ErrUnsupported
	}
	begin(int64(len(f.backup)))
	n, err := w.Write(f.backup)
	return int64(n), err
}

func (f *fake) CheckStore(context.Context) (store.Report, error) {
	if f.report == nil {
		return store.Report{}, ErrUnsupported
	}
	return *f.report, nil
}

func (f *fake) SubmitCode(name, code string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	waiting, ok := f.sessions[name]
	switch {
	case !ok:
		return ErrUnknownSession
	case !waiting:
		return ErrNotWaiting
	}
	f.codes = append(f.codes, code)
	return nil
}

func (f *fake) RestartPlugin(_ context.Context, name string) error {
	if f.plugins == nil {
		return ErrNoPlugins
	}
	err, ok := f.plugins[name]
	if !ok {
		return errors.New("plugins: no plugin " + name)
	}
	return err
}

func (f *fake) Paused() []store.Pause {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paused)
}

func (f *fake) Resume(_ context.Context, account, conv string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.paused, func(p store.Pause) bool { return p.Account == account && p.Conv == conv })
	if i < 0 {
		return ErrNotPaused
	}
	f.paused = slices.Delete(f.paused, i, i+1)
	return nil
}

func (f *fake) Reload() (int, error) {
	if f.reload != nil {
		return 0, f.reload
	}
	return f.rules, nil
}

// request is one request to a Server's handler, from loopback unless
// remote says otherwise.
type request struct {
	method, path, body string
	token              string // sent as "Bearer "+token
	auth               string // the Authorization header as it is, instead
	remote             string
}

// do serves r with s's handler and returns the answer.
func (r request) do(t *testing.T, s *Server) *httptest.ResponseRecorder {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	req := httptest.NewRequest(method, r.path, strings.NewReader(r.body))
	req.RemoteAddr = "127.0.0.1:40000"
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}
