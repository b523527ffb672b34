package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// wait receives from ch or fails the test after a deadline.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestStreamDeliversAndEnds: an event of the backend reaches a connected
// browser, and when the browser goes away the handler and the subscription
// end with it.
func TestStreamDeliversAndEnds(t *testing.T) {
	t.Parallel()
	f := newFake()
	h := New(f, Options{Loopback: true})
	handled := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		handled <- r.URL.Path
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events/stream", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" ||
		res.Header.Get("Content-Security-Policy") != contentSecurityPolicy {
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	wait(t, f.subscribed, "the subscription")
	sent := Event{Seq: 42, Time: t0, Kind: "session.online", Account: "shop", Message: "line one\nline two " + hostile}
	go func() {
		select {
		case f.events <- sent:
		case <-ctx.Done():
		}
	}()

	lines := bufio.NewScanner(res.Body)
	var id string
	for lines.Scan() {
		line := lines.Text()
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = v
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var got streamEvent
			if err := json.Unmarshal([]byte(data), &got); err != nil {
				t.Fatalf("data %q: %v", data, err)
			}
			if id != "42" || got.Seq != 42 || got.Message != sent.Message || got.Kind != sent.Kind ||
				got.Account != "shop" || got.Clock != "2026-11-20 09:00:00" || got.Time != t0.Format(time.RFC3339) {
				t.Fatalf("received id %s %+v", id, got)
			}
			break
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}

	cancel()
	wait(t, f.ended, "the subscription's end")
	if path := wait(t, handled, "the handler's return"); path != "/events/stream" {
		t.Fatalf("returned: %s", path)
	}
	if n := f.subs.Load(); n != 0 {
		t.Errorf("%d subscriptions alive after the browser left", n)
	}
}

// TestStreamHeartbeat runs a stream in virtual time: a comment every
// heartbeat, and nothing left behind when the request ends.
func TestStreamHeartbeat(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		h := New(f, Options{Loopback: true})
		ctx, cancel := context.WithCancel(t.Context())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/events/stream", nil)
		r.Host = "localhost"
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			h.ServeHTTP(w, r)
			close(done)
		}()
		time.Sleep(2*DefaultHeartbeat + time.Second)
		cancel()
		<-done
		synctest.Wait() // the subscription ends on its own goroutine
		if got := strings.Count(w.Body.String(), ": heartbeat\n\n"); got != 2 {
			t.Errorf("%d heartbeats in 31s:\n%s", got, w.Body)
		}
		if n := f.subs.Load(); n != 0 {
			t.Errorf("%d subscriptions alive", n)
		}
	})
}

// TestStreamEndsWithTheBackend: a closed subscription ends the stream, and
// the browser reconnects by itself (the retry field).
func TestStreamEndsWithTheBackend(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		closed := make(chan Event)
		close(closed)
		h := New(closedBackend{newFake(), closed}, Options{Loopback: true})
		r := httptest.NewRequest(http.MethodGet, "/events/stream", nil)
		r.Host = "localhost"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !strings.HasPrefix(w.Body.String(), "retry: 3000\n") {
			t.Errorf("stream:\n%s", w.Body)
		}
	})
}

// TestStreamHead answers at once: a HEAD has no body to stream into.
func TestStreamHead(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		b := newBrowser(t, New(f, Options{Loopback: true}))
		w := b.do(http.MethodHead, "/events/stream", nil)
		if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream; charset=utf-8" || f.subs.Load() != 0 {
			t.Errorf("HEAD: %d %q, %d subscriptions", w.Code, w.Header().Get("Content-Type"), f.subs.Load())
		}
	})
}

type closedBackend struct {
	*fake
	ch chan Event
}

func (b closedBackend) Subscribe(context.Context) <-chan Event { return b.ch }

func TestStreamsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		h := New(f, Options{Loopback: true, MaxStreams: 1})
		ctx, cancel := context.WithCancel(t.Context())
		first := httptest.NewRequestWithContext(ctx, http.MethodGet, "/events/stream", nil)
		first.Host = "localhost"
		done := make(chan struct{})
		go func() {
			h.ServeHTTP(httptest.NewRecorder(), first)
			close(done)
		}()
		synctest.Wait()
		b := newBrowser(t, h)
		if w := b.get("/events/stream"); w.Code != http.StatusServiceUnavailable {
			t.Errorf("second stream: %d", w.Code)
		}
		cancel()
		<-done
		ctx2, cancel2 := context.WithCancel(t.Context())
		again := httptest.NewRequestWithContext(ctx2, http.MethodGet, "/events/stream", nil)
		again.Host = "localhost"
		w := httptest.NewRecorder()
		cancel2()
		h.ServeHTTP(w, again)
		if w.Code != 200 {
			t.Errorf("a stream after the first ended: %d", w.Code)
		}
	})
}

// TestIdleCostsNothing: serving every page and a stream leaves no goroutine
// behind; synctest.Test fails if one is left blocked in the bubble.
func TestIdleCostsNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		b := newBrowser(t, New(f, Options{Token: token}))
		b.signIn(token)
		for _, tc := range pageRoutes {
			b.get(tc.path)
		}
		ctx, cancel := context.WithCancel(t.Context())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/events/stream", nil)
		r.Host = "localhost"
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: b.cookies[sessionCookie]})
		done := make(chan struct{})
		go func() {
			b.h.ServeHTTP(httptest.NewRecorder(), r)
			close(done)
		}()
		synctest.Wait()
		if f.subs.Load() != 1 {
			t.Fatal("the stream did not subscribe")
		}
		cancel()
		<-done
		synctest.Wait()
		if n := f.subs.Load(); n != 0 {
			t.Errorf("%d subscriptions alive", n)
		}
	})
}
