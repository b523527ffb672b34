package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/finderbot/finderbot/sdk"
)

// RunLock is `finderbot plugins lock`: it pins every plugin executable in
// dir into lockPath (default dir/plugins.lock) and reports what it pinned
// on out and any skipped files on errOut.
func RunLock(out, errOut io.Writer, dir, lockPath string) error {
	if lockPath == "" {
		lockPath = filepath.Join(dir, LockFileName)
	}
	pins, problems, err := LockDir(dir, lockPath)
	for _, p := range problems {
		fmt.Fprintln(errOut, "warning:", p)
	}
	if err != nil {
		return err
	}
	for _, p := range pins {
		fmt.Fprintf(out, "pinned %s  %s\n", p.SHA256, p.Name)
	}
	fmt.Fprintf(out, "wrote %d pin(s) to %s\n", len(pins), lockPath)
	return nil
}

// RunList is `finderbot plugins ls`: it starts every plugin in cfg.Dir the
// way the daemon would, writes the table of WriteList to out, and stops
// them. Plugins cannot call back into a daemon meanwhile; listing needs only
// their descriptions. Problems go to errOut as log records.
func RunList(ctx context.Context, out, errOut io.Writer, cfg Config, verbose bool) error {
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := New(cfg, offlineHost{}, log)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	infos := m.List()
	if err := m.Close(); err != nil {
		return err
	}
	return WriteList(out, infos, verbose)
}

// WriteList writes infos as a table: name, version, state, restarts and
// actions, then any problems. verbose adds each action's parameters.
func WriteList(w io.Writer, infos []Info, verbose bool) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintln(w, "no plugins")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tPINNED\tRESTARTS\tACTIONS")
	for _, in := range infos {
		names := make([]string, len(in.Actions))
		for i, a := range in.Actions {
			names[i] = a.Name
		}
		version := in.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\n", in.Name, version, in.State, in.Pinned, in.Restarts, strings.Join(names, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, in := range infos {
		if in.Problem != "" {
			fmt.Fprintf(w, "\n%s: %s\n", in.Name, in.Problem)
		}
		if !verbose {
			continue
		}
		if in.Description != "" {
			fmt.Fprintf(w, "\n%s — %s\n", in.Name, in.Description)
		} else {
			fmt.Fprintf(w, "\n%s\n", in.Name)
		}
		for _, a := range in.Actions {
			fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %s.%s  %s", in.Name, a.Name, a.Description), " "))
			for _, p := range a.Params {
				var notes []string
				if p.Required {
					notes = append(notes, "required")
				}
				if p.Default != "" {
					notes = append(notes, fmt.Sprintf("default %q", p.Default))
				}
				note := ""
				if len(notes) > 0 {
					note = " (" + strings.Join(notes, ", ") + ")"
				}
				fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("      %s%s  %s", p.Name, note, p.Description), " "))
			}
		}
	}
	return nil
}

// errOffline is what plugins get from host callbacks outside the daemon.
var errOffline = errors.New("plugins: not running inside the daemon")

// offlineHost refuses every callback: it serves commands that start plugins
// only to ask them about themselves.
type offlineHost struct{}

func (offlineHost) Send(context.Context, string, sdk.Send) error { return errOffline }
func (offlineHost) Get(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errOffline
}
func (offlineHost) Put(context.Context, string, string, []byte) error { return errOffline }
func (offlineHost) Delete(context.Context, string, string) error      { return errOffline }
func (offlineHost) Keys(context.Context, string, string) ([]string, error) {
	return nil, errOffline
}
func (offlineHost) Token(context.Context, string, string) (string, error) { return "", errOffline }
