package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestStoreThroughTheAdminAPI takes a backup and a check of a running
// daemon's store: a backup needs admin.token even on loopback (it holds the
// logins' tokens), the copy checks clean and holds what the daemon stored.
func TestStoreThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	h.online("shop")
	h.sent(1)
	resp := get(t, "http://"+h.d.AdminAddr()+"/api/store/backup", "")
	if body := readAll(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "set admin.token") {
		t.Fatalf("a backup without admin.token: %d %s", resp.StatusCode, body)
	}

	h.d.Close()
	h.cfg.Admin.Token = config.Secret("s3cret")
	h.start()
	// A secret inside the store must reach the copy as it is: the admin
	// API's redaction would damage the copy.
	if err := h.d.store.KV("x").Put(context.Background(), "token", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	base := "http://" + h.d.AdminAddr()
	if resp := get(t, base+"/api/store/backup", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a backup without the bearer token: %d %s", resp.StatusCode, readAll(t, resp))
	}
	resp = get(t, base+"/api/store/backup", "s3cret")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Fatalf("backup: %d, %d bytes announced", resp.StatusCode, resp.ContentLength)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	rep, err := store.WriteVerified(file, func(w io.Writer) error {
		_, err := io.Copy(w, resp.Body)
		return err
	})
	if err != nil || !strings.HasPrefix(rep.String(), "ok: "+file+": 1 accounts, ") || rep.SeenIDs < 19 {
		t.Fatalf("the backup: %s, %v", rep.String(), err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() != resp.ContentLength || fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup file: %v, %v (announced %d bytes)", fi, err, resp.ContentLength)
	}
	if data, err := os.ReadFile(file); err != nil || !bytes.Contains(data, []byte("s3cret")) {
		t.Errorf("the backup lost the secret it holds (redacted?): %v", err)
	}

	resp = get(t, base+"/api/store/check", "s3cret")
	var got store.Report
	if err := json.Unmarshal([]byte(readAll(t, resp)), &got); err != nil || !got.OK() || got.SeenIDs < 19 || got.Path != store.File(h.cfg.StateDir) {
		t.Fatalf("check: %d %+v, %v", resp.StatusCode, got, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(h.cfg.StateDir, "*.check-*")); len(leftovers) > 0 {
		t.Errorf("the check left its copy behind: %v", leftovers)
	}
}

// TestDamagedStoreStopsTheDaemon damages the pages of a running daemon's
// store: the daemon process stops with exit status 1 and the damage in one
// line, instead of crashing with a bbolt panic or a fault.
func TestDamagedStoreStopsTheDaemon(t *testing.T) {
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), greetRules)
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %q, account: %q, password: %q}
accounts: [{name: shop}]
rules: [./rules.yaml]
admin: {listen: ""}
sync: {idle_interval: 5ms, busy_interval: 0s, online_check: 50ms}
send: {interval: 0s, jitter: 0s}
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+cfgPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if _, err := srv.WaitSent(ctx, 1); err != nil {
		t.Fatalf("the daemon did not answer the seed page: %v", err)
	}

	// Every page in use becomes a page of no known type; a commit racing
	// with the damage may write fresh pages, so damage again until the
	// daemon stops.
	path := store.File(filepath.Join(dir, "state"))
	var err error
	for stopped := false; !stopped; {
		damagePages(t, path)
		srv.Inject("", sim.Text("", "哈喽"))
		select {
		case err = <-exited:
			stopped = true
		case <-time.After(time.Second):
		case <-ctx.Done():
			t.Fatalf("the daemon did not stop on a damaged store:\n%s", stderr.String())
		}
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	out := stderr.String()
	last := out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:]
	for _, want := range []string{"store: ", path + " is damaged: bbolt panicked: ", "restore", "move the file aside"} {
		if !strings.Contains(last, want) {
			t.Errorf("the last line does not say %q: %s", want, last)
		}
	}
	t.Logf("the daemon's last line: %s", last)
	if strings.Contains(out, "goroutine ") || strings.Contains(out, "\npanic: ") {
		t.Errorf("the daemon crashed instead of stopping:\n%s", out)
	}
}

// damagePages gives every leaf and branch page of the bbolt file at path a
// page type that does not exist.
func damagePages(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := int64(os.Getpagesize())
	head := make([]byte, 16)
	for off := 2 * ps; ; off += ps {
		if _, err := f.ReadAt(head, off); err != nil {
			return
		}
		if flags := binary.NativeEndian.Uint16(head[8:]); flags == 0x01 || flags == 0x02 {
			if _, err := f.WriteAt([]byte{0x40, 0}, off+8); err != nil {
				t.Fatal(err)
			}
		}
	}
}
