package console

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

var (
	demoAddr  = flag.String("demo", "", "serve the console over the fake backend at this address, e.g. 127.0.0.1:9300")
	demoToken = flag.String("demo-token", "", "with -demo: the admin token to sign in with")
)

// TestServeDemo serves the console with the test's fake data for a look in
// a browser: go test ./engine/console -run TestServeDemo -demo 127.0.0.1:9300 -timeout 0
func TestServeDemo(t *testing.T) {
	if *demoAddr == "" {
		t.Skip("no -demo address")
	}
	ln, err := net.Listen("tcp", *demoAddr)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	go func() {
		for i := uint64(100); ; i++ {
			time.Sleep(3 * time.Second)
			f.events <- Event{Seq: i, Time: time.Now(), Kind: "demo.tick", Account: "shop", Message: fmt.Sprintf("event %d", i)}
		}
	}()
	t.Logf("console at http://%s/", ln.Addr())
	srv := &http.Server{Handler: New(f, Options{Token: *demoToken, Loopback: true}), ReadHeaderTimeout: 5 * time.Second}
	t.Fatal(srv.Serve(ln))
}
