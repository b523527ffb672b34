// Package natstest starts NATS JetStream servers inside a test process: one
// server, or a cluster of several, on loopback ports chosen at random, with
// their storage in the test's temporary directories.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a set of JetStream servers routed to each other.
type Cluster struct {
	t       testing.TB
	log     *testLog
	name    string
	ports   []int // client ports
	routes  []int // cluster ports
	dirs    []string
	Servers []*server.Server
}

// Start starts a cluster of n servers (a lone server when n is 1) and
// waits until its JetStream is ready. They are shut down when the test
// ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, log: &testLog{t: t}, name: fmt.Sprintf("fb-%d", time.Now().UnixNano()%1e6)}
	for range n {
		c.ports = append(c.ports, freePort(t))
		if n > 1 {
			c.routes = append(c.routes, freePort(t))
		}
		c.dirs = append(c.dirs, t.TempDir())
	}
	c.Servers = make([]*server.Server, n)
	for i := range n {
		c.startNode(i)
	}
	t.Cleanup(c.Shutdown)
	for i := range n {
		if !c.Servers[i].ReadyForConnections(20 * time.Second) {
			t.Fatalf("natstest: server %d not ready", i)
		}
	}
	c.WaitJetStream()
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) startNode(i int) {
	c.t.Helper()
	opts := &server.Options{
		ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: c.ports[i],
		JetStream: true, StoreDir: c.dirs[i], NoLog: true, NoSigs: true,
		JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30,
	}
	if len(c.routes) > 0 {
		opts.Cluster = server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: c.routes[i]}
		for j, p := range c.routes {
			if j != i {
				opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
			}
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("natstest: server %d: %v", i, err)
	}
	// The servers' warnings and errors go to the test's log, shown when it
	// fails: an API error such as "error creating store for stream" names
	// its cause only there.
	s.SetLogger(c.log, false, false)
	go s.Start()
	c.Servers[i] = s
}

// URL returns the client URLs of every server, comma-separated, as a NATS
// client takes them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.ports))
	for i, p := range c.ports {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	return strings.Join(urls, ",")
}

// Connect returns a client connection to the cluster, closed when the test
// ends.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitJetStream waits until every running server sees a JetStream meta
// leader.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Servers {
		if s == nil || !s.Running() {
			continue
		}
		for !s.JetStreamIsCurrent() || (len(c.Servers) > 1 && !s.JetStreamIsClustered()) {
			if time.Now().After(deadline) {
				c.t.Fatalf("natstest: JetStream of %s not ready", s.Name())
			}
			time.Sleep(20 * time.Millisecond) // the server offers no notification of this
		}
	}
	c.probe(deadline)
}

// probe creates and deletes a stream replicated on every running server
// until that works: the cluster is ready when it can place one.
func (c *Cluster) probe(deadline time.Time) {
	c.t.Helper()
	running := 0
	for _, s := range c.Servers {
		if s != nil && s.Running() {
			running++
		}
	}
	nc, err := nats.Connect(c.URL())
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "NATSTEST_PROBE", Subjects: []string{"natstest.probe"}, Replicas: running, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "NATSTEST_PROBE")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: the cluster cannot place a stream on %d servers: %v", running, err)
		}
		time.Sleep(50 * time.Millisecond) // the server offers no notification of this
	}
}

// Stop shuts server i down, as a crash would stop it.
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// Restart starts server i again on its port and storage.
func (c *Cluster) Restart(i int) {
	c.startNode(i)
	if !c.Servers[i].ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("natstest: server %d not ready after restart", i)
	}
}

// Shutdown stops every server.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	c.log.close()
}

// testLog passes a server's warnings and errors to the test's log until
// the cluster is shut down: a test's log may not be written once it ended,
// and a server's goroutines can outlive its shutdown by a moment.
type testLog struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (l *testLog) logf(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf("nats-server %s: %s", level, fmt.Sprintf(format, v...))
	}
}

func (l *testLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// Noticef, Debugf and Tracef drop what the server says in the ordinary
// course of things.
func (l *testLog) Noticef(string, ...any) {}
func (l *testLog) Debugf(string, ...any)  {}
func (l *testLog) Tracef(string, ...any)  {}

// Warnf passes a warning to the test's log.
func (l *testLog) Warnf(format string, v ...any) { l.logf("warning", format, v...) }

// Errorf passes an error to the test's log.
func (l *testLog) Errorf(format string, v ...any) { l.logf("error", format, v...) }

// Fatalf passes a fatal error to the test's log.
func (l *testLog) Fatalf(format string, v ...any) { l.logf("fatal", format, v...) }
