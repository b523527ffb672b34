package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLimited serves the API of a fake backend on a loopback port with
// the limits lim, until the test ends, and returns its address.
func serveLimited(t *testing.T, lim Limits) string {
	t.Helper()
	s := New(newFake(), Options{Limits: lim})
	return serve(t, s)
}

// serve serves s on a loopback port until the test ends, and returns its
// address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dial opens a raw TCP connection to addr.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed waits, up to within, for the server to close c, and returns
// how long it took and what the server sent before closing.
func waitClosed(t *testing.T, c net.Conn, within time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	var got strings.Builder
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", within)
	}
	return time.Since(start), got.String()
}

// healthz sends GET /healthz on c and reads the answer, waiting up to
// within.
func healthz(c net.Conn, within time.Duration) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: finderbot\r\n\r\n"); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, err
}

// TestCutsSlowClients: a header that never ends, a body that never
// ends and a keep-alive connection left idle are each closed once their
// timeout passes — well before the test's own deadline, which the
// unlimited server would reach.
func TestCutsSlowClients(t *testing.T) {
	t.Parallel()
	const limit = 150 * time.Millisecond
	addr := serveLimited(t, Limits{ReadHeaderTimeout: limit, ReadTimeout: limit, IdleTimeout: limit})
	for name, tc := range map[string]struct {
		start func(c net.Conn)
		last  string // what the server answers before it closes
	}{
		"slowloris header": {start: func(c net.Conn) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: finderbot\r\nX-Slow: a")
		}},
		"slow body": {start: func(c net.Conn) {
			io.WriteString(c, "POST /api/accounts/shop/code HTTP/1.1\r\nHost: finderbot\r\nContent-Length: 100\r\n\r\n123")
		}, last: "reading the code"}, // the part that came is no code
		"idle keep-alive": {start: func(c net.Conn) {
			resp, err := healthz(c, 5*time.Second)
			if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
				t.Errorf("keep-alive request: %v, %v", resp, err)
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			tc.start(c)
			took, got := waitClosed(t, c, 4*time.Second)
			if took > 3*time.Second {
				t.Errorf("closed after %v; the limit is %v", took, limit)
			}
			if !strings.Contains(got, tc.last) {
				t.Errorf("the server answered %q before closing, want %q in it", got, tc.last)
			}
		})
	}
}

// TestHeaderLimit: a header over the default 64 KiB gets 431; one a
// little under it is served.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	addr := serveLimited(t, Limits{})
	for size, want := range map[int]int{60 << 10: http.StatusOK, 72 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", size))
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%d bytes of header: %v", size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%d bytes of header: %d, want %d", size, resp.StatusCode, want)
		}
	}
}

// TestConnectionLimit holds every connection the listener serves: the
// next one is not served, and is as soon as one of them closes.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	const max = 3
	addr := serveLimited(t, Limits{MaxConns: max, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute})
	var held []net.Conn
	for range max {
		c := dial(t, addr)
		if resp, err := healthz(c, 5*time.Second); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v, %v", len(held)+1, resp, err)
		}
		held = append(held, c)
	}
	extra := dial(t, addr) // the kernel accepts it; the server does not serve it
	if _, err := io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: finderbot\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if n, err := extra.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection %d was served while %d were held: %d bytes, %v", max+1, max, n, err)
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("once a slot freed, /healthz answered %v, %v", resp, err)
	}
}

// TestLongResponseOutlivesReadTimeout: a request without a body keeps
// its context while its handler runs past ReadTimeout, as a stream does
// (a late body is still cut: TestCutsSlowClients).
func TestLongResponseOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{ReadTimeout: readTimeout}
	srv := lim.httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			io.WriteString(w, "cancelled")
		case <-time.After(6 * readTimeout): // what is tested is a wait past the deadline
			io.WriteString(w, "alive")
		}
	}))
	go srv.Serve(lim.listener(ln))
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get("http://" + ln.Addr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "alive" {
		t.Fatalf("a long GET got %q", body)
	}
}

// TestServerDefaults checks the limits a server gets when it is given none.
func TestServerDefaults(t *testing.T) {
	t.Parallel()
	srv := New(newFake(), Options{}).srv
	got := fmt.Sprint(srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.WriteTimeout, srv.MaxHeaderBytes)
	if want := fmt.Sprint(5*time.Second, 30*time.Second, time.Minute, time.Duration(0), 64<<10); got != want {
		t.Fatalf("limits %s, want %s", got, want)
	}
}
