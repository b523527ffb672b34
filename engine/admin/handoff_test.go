package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// TestPausedAndResume: the paused conversations are listed, one is resumed
// by its account and conversation, and resuming it again is a 404 that
// says where the list is.
func TestPausedAndResume(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.paused = []store.Pause{{Account: "shop", Conv: "ab@findermsg", Until: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)}}
	s := New(f, Options{})
	w := request{path: "/api/conversations/paused"}.do(t, s)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"conv": "ab@findermsg"`) {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	w = request{method: "POST", path: "/api/accounts/shop/conversations/ab@findermsg/resume"}.do(t, s)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"resumed"`) {
		t.Fatalf("resume: %d %s", w.Code, w.Body)
	}
	w = request{method: "POST", path: "/api/accounts/shop/conversations/ab@findermsg/resume"}.do(t, s)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "/api/conversations/paused") {
		t.Fatalf("second resume: %d %s", w.Code, w.Body)
	}
	if w := (request{path: "/api/conversations/paused"}).do(t, s); w.Body.String() != "[]\n" && strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("after resume: %s", w.Body)
	}
}
