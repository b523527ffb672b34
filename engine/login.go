package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/session"
)

// Login is `finderbot login NAME`: it logs the named account or session in
// at the terminal — drawing the QR code of a WeChat login, asking for the
// verify code or the SMS code when one is needed, showing the slider URL —
// and saves the result in the store, so that `finderbot run` starts online.
// It cannot run while a daemon holds the state directory.
func Login(ctx context.Context, path, name string, in io.Reader, out io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	cfg.Log.Level = "warn" // the terminal is for the questions
	states := make(chan string, 16)
	out = &lockedWriter{w: out} // the log's warnings and the QR code share the terminal
	d, err := New(cfg, Options{Logger: NewLogger(out, cfg.Log), QR: out})
	if err != nil {
		return err
	}
	defer d.Close()
	s := d.sessions[name]
	if s == nil {
		names := make([]string, 0, len(d.sessions))
		for n := range d.sessions {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Errorf("engine: no account or session named %q (configured: %s)", name, strings.Join(names, ", "))
	}
	d.watchState = func(n, state string) {
		if n == name {
			select {
			case states <- state:
			default:
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	switch s := s.(type) {
	case *session.Keeper:
		go func() { _, err := s.LoginLoop(ctx); done <- err }()
	case interface{ Run(context.Context) error }:
		go func() { done <- s.Run(ctx) }()
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	fmt.Fprintf(out, "Logging in %s (%s)…\n", name, s.Kind())
	for {
		select {
		case err := <-done:
			if err != nil {
				return d.secrets.Error(fmt.Errorf("engine: login %s: %w", name, err))
			}
		case <-ctx.Done():
			return ctx.Err()
		case state := <-states:
			_, detail := s.State()
			detail = d.secrets.String(detail) // an upstream's error may quote the request
			switch state {
			case session.StateOnline:
				fmt.Fprintf(out, "%s is online; the login is saved in %s.\n", name, cfg.StateDir)
				return nil
			case session.StateSlider:
				fmt.Fprintf(out, "WeChat asks for a slider check: open %s on the phone and slide. Waiting…\n", detail)
			case session.StateNeedsCode:
				fmt.Fprintf(out, "%s — enter the code: ", detail)
				select {
				case code := <-lines:
					s.SubmitCode(code)
				case <-ctx.Done():
					return ctx.Err()
				}
			case session.StateBackingOff:
				fmt.Fprintf(out, "Login failed (%s); trying again…\n", detail)
			case session.StateWaiting:
				fmt.Fprintln(out, detail)
			}
		}
	}
}
