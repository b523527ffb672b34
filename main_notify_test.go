package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunNotifiesSystemd runs the daemon as systemd runs a Type=notify
// service, NOTIFY_SOCKET naming a datagram socket: READY=1 arrives with a
// status naming the admin API, which answers by then; STOPPING=1 when
// SIGTERM begins the shutdown.
func TestRunNotifiesSystemd(t *testing.T) {
	t.Parallel()
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml": simConfig("./data", "./rules"),
		"rules/ok.yaml":  goodRule,
	}}.setUp(t)
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	notes := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			select {
			case n := <-notes:
				if strings.Contains(n, want) {
					return n
				}
			case <-timer.C:
				t.Fatalf("no %s notification within %v", want, deadline)
			}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := finderbot(t, ctx, "run", "--config", filepath.Join(dir, "finderbot.yaml"))
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock)
	d := startProc(t, cmd)
	ready := next("READY=1")
	_, addr, ok := strings.Cut(ready, "admin API on ")
	if !ok {
		t.Fatalf("READY=1 does not say where the admin API is: %q", ready)
	}
	resp, err := http.Get("http://" + strings.TrimSpace(addr) + "/healthz")
	if err != nil {
		t.Fatalf("the admin API does not answer once READY=1 is sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz once READY=1 is sent: %s", resp.Status)
	}

	d.waitFor(t, `msg="finderbot started"`)
	d.signal(t, syscall.SIGTERM)
	next("STOPPING=1")
	if _, err := d.waitExit(t, deadline); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, d.log())
	}
}
