package redact

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const httpSecret = `as-93e1"b7<c0a4`

func serve(t *testing.T, s *Set, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Filter(s, h))
	t.Cleanup(srv.Close)
	return srv
}

func fetch(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url) // asks for gzip, as browsers do
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestFilterAcrossWrites writes a secret, JSON-escaped, cut across two
// writes, with a Content-Length for the unredacted body and the secret in a
// header.
func TestFilterAcrossWrites(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add(httpSecret)
	body, _ := json.Marshal(map[string]string{"error": "refused: " + httpSecret})
	cut := strings.Index(string(body), "e1") + 1
	srv := serve(t, s, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("X-Echo", httpSecret)
		w.WriteHeader(http.StatusBadGateway)
		w.Write(body[:cut])
		w.Write(body[cut:])
	})
	resp, got := fetch(t, srv.URL)
	if resp.StatusCode != http.StatusBadGateway || got != `{"error":"refused: [redacted]"}` || resp.Header.Get("X-Echo") != Mark {
		t.Fatalf("%d %q, X-Echo %q", resp.StatusCode, got, resp.Header.Get("X-Echo"))
	}
}

// TestFilterCompressingHandler serves Prometheus metrics, which promhttp
// gzips for a client that accepts it: the filter must see plain text.
func TestFilterCompressingHandler(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add(httpSecret)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "echo", Help: "echo"}, []string{"last_error"})
	g.WithLabelValues("refused: " + httpSecret).Set(1)
	reg.MustRegister(g)
	srv := httptest.NewServer(Filter(s, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	t.Cleanup(srv.Close)
	_, got := fetch(t, srv.URL)
	if !strings.Contains(got, `echo{last_error="refused: [redacted]"} 1`) {
		t.Fatalf("metrics:\n%s", got)
	}
}

// TestFilterStreams: a flushed event reaches the client while the handler
// still runs, and a secret in a later event is hidden.
func TestFilterStreams(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add(httpSecret)
	read := make(chan struct{})
	srv := serve(t, s, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Error(err)
		}
		select {
		case <-read:
		case <-time.After(10 * time.Second):
			t.Error("the first event never reached the client")
		}
		io.WriteString(w, "data: "+httpSecret+"\n\n")
	})
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(read)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: [redacted]\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

// TestUnfiltered: a handler that opts out sends its bytes exactly, with its
// Content-Length.
func TestUnfiltered(t *testing.T) {
	t.Parallel()
	s := New()
	s.Add(httpSecret)
	payload := strings.Repeat("bolt page "+httpSecret+" ", 1000)
	srv := serve(t, s, func(w http.ResponseWriter, r *http.Request) {
		w = Unfiltered(w)
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		for i := 0; i < len(payload); i += 7 {
			w.Write([]byte(payload[i:min(i+7, len(payload))]))
		}
	})
	resp, got := fetch(t, srv.URL)
	if got != payload || resp.ContentLength != int64(len(payload)) {
		t.Fatalf("got %d bytes (Content-Length %d), want the %d sent", len(got), resp.ContentLength, len(payload))
	}
}

// TestFilterReachesTheConnection: http.ResponseController sees through the
// filter, so handlers can set their own deadlines.
func TestFilterReachesTheConnection(t *testing.T) {
	t.Parallel()
	srv := serve(t, New(), func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.SetReadDeadline(time.Time{}); err != nil {
			t.Errorf("SetReadDeadline: %v", err)
		}
		io.WriteString(w, "ok")
	})
	if _, got := fetch(t, srv.URL); got != "ok" {
		t.Fatal(got)
	}
}
