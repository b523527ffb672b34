package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/finderbot/finderbot/engine/config"
)

// Run is `finderbot run`: it loads the configuration at path, runs the
// daemon until ctx is cancelled (SIGINT/SIGTERM in main), reloads the rules
// on SIGHUP, and stops cleanly. Logs go to logOut; login QR codes are drawn
// on qrOut.
func Run(ctx context.Context, path string, logOut, qrOut io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log := NewLogger(logOut, cfg.Log)
	d, err := New(cfg, Options{Logger: log, QR: qrOut})
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		d.Close()
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading rules")
			d.Reload() // a failed reload is logged and keeps the old rules
		case <-ctx.Done():
			log.Info("shutting down")
			err := d.Close()
			if err != nil {
				return fmt.Errorf("engine: shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		}
	}
}

// NewLogger returns the daemon's structured logger for the log settings.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
