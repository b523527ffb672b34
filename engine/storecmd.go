package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/finderbot/finderbot/engine/admin"
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
	if api, err := admin.ConfigClient(cfg); err == nil {
		rep, n, err := api.Backup(ctx, file)
		if !errors.Is(err, admin.ErrNoDaemon) {
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %s (%d bytes) from the daemon running at %s\n%s\n", file, n, api.Addr(), rep.String())
			return nil
		}
	}
	if err := embeddedOnly(cfg, "backup"); err != nil {
		return err
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
	if api, err := admin.ConfigClient(cfg); err == nil {
		rep, err := api.Check(ctx)
		if !errors.Is(err, admin.ErrNoDaemon) {
			rep.Path += " (through the daemon running at " + api.Addr() + ")"
			return rep, err
		}
	}
	if err := embeddedOnly(cfg, "check"); err != nil {
		return store.Report{}, err
	}
	return store.CheckFile(store.File(cfg.StateDir))
}

// embeddedOnly refuses a store command meant for the embedded store when
// the state is in JetStream, saying what to use instead.
func embeddedOnly(cfg *config.Config, what string) error {
	if cfg.Store.Kind != config.StoreNATS {
		return nil
	}
	return fmt.Errorf("store %s: the state of %s is in NATS JetStream (stream %s at %s), not in a file; use `nats stream backup %s DIR` and the JetStream cluster's own replicas", what, cfg.Path, cfg.Store.Stream, cfg.Store.URL, cfg.Store.Stream)
}
