package console

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// countedBackend counts the Overviews asked of it, and has its latest
// event's sequence number set by the test.
type countedBackend struct {
	*fake
	mu        sync.Mutex
	overviews int
	seq       uint64
}

func (b *countedBackend) Overview(ctx context.Context) Overview {
	b.mu.Lock()
	b.overviews++
	b.mu.Unlock()
	return b.fake.Overview(ctx)
}

func (b *countedBackend) RecentEvents(context.Context, int) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return []Event{{Seq: b.seq}}
}

func (b *countedBackend) asked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.overviews
}

// TestOverviewListingIsKeptUntilAnEventOrASecond: requests with no event
// between them share one listing; an event makes the next request make a
// new one before it is answered; a listing older than overviewMaxAge is
// still served once while the next is made in the background, and the
// request after gets that one.
func TestOverviewListingIsKeptUntilAnEventOrASecond(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := &countedBackend{fake: newFake(), seq: 7}
		var ls listings
		ctx := context.Background()
		now := time.Now()
		first := ls.get(ctx, b, now)
		if again := ls.get(ctx, b, now.Add(overviewMaxAge/2)); again != first || b.asked() != 1 {
			t.Fatalf("within a second and no event: %d Overviews asked, the same listing %v", b.asked(), again == first)
		}
		b.mu.Lock()
		b.seq = 8
		b.mu.Unlock()
		afterEvent := ls.get(ctx, b, now.Add(overviewMaxAge/2))
		if afterEvent == first || b.asked() != 2 {
			t.Fatalf("after an event: %d Overviews asked, a new listing %v", b.asked(), afterEvent != first)
		}
		late := now.Add(2 * overviewMaxAge)
		if stale := ls.get(ctx, b, late); stale != afterEvent {
			t.Fatal("an old listing was not served while the next was made")
		}
		synctest.Wait() // the refresh in the background
		if b.asked() != 3 {
			t.Fatalf("%d Overviews asked, want the refresh's third", b.asked())
		}
		if fresh := ls.get(ctx, b, late); fresh == afterEvent || b.asked() != 3 {
			t.Fatalf("after the refresh: %d Overviews asked, its listing served %v", b.asked(), fresh != afterEvent)
		}
		// Many requests at once on an old listing start one refresh.
		later := late.Add(2 * overviewMaxAge)
		for range 10 {
			ls.get(ctx, b, later)
		}
		synctest.Wait()
		if b.asked() != 4 {
			t.Fatalf("%d Overviews asked after ten requests on an old listing, want one refresh more", b.asked())
		}
	})
}

// TestOverviewFragmentIsKeptRenderedPerLanguageAndTimesAgo: the unfiltered
// Overview's live fragment is served again as rendered while nothing in it
// moved; a request in another language, or once the times ago moved, gets
// its own.
func TestOverviewFragmentIsKeptRenderedPerLanguageAndTimesAgo(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(newFake(), Options{Loopback: true})
		zh, en := newBrowser(t, h), newBrowser(t, h)
		get := func(b *browser, headers ...string) string {
			t.Helper()
			w := b.get("/fragments/overview", headers...)
			if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
			}
			return w.Body.String()
		}
		first := get(zh)
		if !strings.Contains(first, "1 分钟前") {
			t.Fatalf("no time ago in\n%s", first)
		}
		if again := get(zh); again != first {
			t.Errorf("the same listing the same second rendered otherwise:\n%s\n%s", first, again)
		}
		if english := get(en, "Accept-Language", "en"); !strings.Contains(english, "1 min ago") || !strings.Contains(english, "Accounts") {
			t.Errorf("English after Chinese:\n%s", english)
		}
		if again := get(zh); again != first {
			t.Errorf("Chinese after English:\n%s", again)
		}
		// The listing is kept for a second and then served once more while
		// the next is made: its times ago have moved on.
		time.Sleep(30 * time.Second)
		if later := get(zh); !strings.Contains(later, "2 分钟前") {
			t.Errorf("30 s later, no time ago moved on in\n%s", later)
		}
		synctest.Wait()
	})
}
