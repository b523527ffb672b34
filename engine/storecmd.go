package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
)

// StoreBackup is `finderbot store backup FILE`: a consistent copy of the
// store of the configuration at cfgPath, written to FILE.tmp, synced,
// checked completely and only then renamed to FILE. A running daemon is
// asked for the copy through its admin API (it holds the store's lock);
// when none runs, the file is opened read-only and copied. What was
// written is said on out.
func StoreBackup(ctx context.Context, cfgPath, file string, out io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	api := newAdminClient(cfg)
	if api != nil {
		rep, n, err := api.backup(ctx, file)
		if !errors.Is(err, errNoDaemon) {
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s (%d bytes) from the daemon running at %s\n%s\n", file, n, api.addr, rep.String())
			return nil
		}
	}
	src := store.File(cfg.StateDir)
	rep, err := store.BackupFile(src, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s from %s (no daemon is running)\n%s\n", file, src, rep.String())
	return nil
}

// StoreCheck is `finderbot store check`: it checks the store file at file
// when one is given, else the store of the configuration at cfgPath —
// through the running daemon's admin API (on a consistent copy), or the
// file itself when no daemon runs. It prints "ok" and the counts, or each
// problem, on out, and reports whether the store checked clean.
func StoreCheck(ctx context.Context, cfgPath, file string, out io.Writer) (bool, error) {
	var rep store.Report
	var err error
	if file != "" {
		rep, err = store.CheckFile(file)
	} else {
		rep, err = checkConfigured(ctx, cfgPath)
	}
	if err != nil {
		return false, err
	}
	fmt.Fprintln(out, rep.String())
	return rep.OK(), nil
}

func checkConfigured(ctx context.Context, cfgPath string) (store.Report, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return store.Report{}, err
	}
	if api := newAdminClient(cfg); api != nil {
		rep, err := api.check(ctx)
		if !errors.Is(err, errNoDaemon) {
			rep.Path += " (through the daemon running at " + api.addr + ")"
			return rep, err
		}
	}
	return store.CheckFile(store.File(cfg.StateDir))
}

// errNoDaemon is a connection to the admin API refused: no daemon runs.
var errNoDaemon = errors.New("engine: no daemon answers on the admin address")

// adminClient calls a running daemon's admin API.
type adminClient struct {
	addr  string
	token string
	hc    *http.Client
}

// newAdminClient returns a client of the configured admin API, or nil
// when it is off. A listener on every address is reached on loopback.
func newAdminClient(cfg *config.Config) *adminClient {
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &adminClient{
		addr:  net.JoinHostPort(host, port),
		token: cfg.Admin.Token.Reveal(),
		hc:    &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil}},
	}
}

// get calls path and returns the answer when it is 200 OK; the error of
// another answer is the daemon's own.
func (c *adminClient) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, errNoDaemon
		}
		return nil, fmt.Errorf("engine: the admin API at %s: %w", c.addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct{ Error string }
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%q", body)
		}
		return nil, fmt.Errorf("engine: the daemon at %s answered %s: %s", c.addr, resp.Status, e.Error)
	}
	return resp, nil
}

func (c *adminClient) backup(ctx context.Context, file string) (store.Report, int64, error) {
	resp, err := c.get(ctx, "/api/store/backup")
	if err != nil {
		return store.Report{}, 0, err
	}
	defer resp.Body.Close()
	var n int64
	rep, err := store.WriteVerified(file, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("the copy ended at %d of its %d bytes", n, resp.ContentLength)
		}
		return err
	})
	return rep, n, err
}

func (c *adminClient) check(ctx context.Context) (store.Report, error) {
	resp, err := c.get(ctx, "/api/store/check")
	if err != nil {
		return store.Report{}, err
	}
	defer resp.Body.Close()
	var rep store.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return store.Report{}, fmt.Errorf("engine: the check report of the daemon at %s: %w", c.addr, err)
	}
	return rep, nil
}
