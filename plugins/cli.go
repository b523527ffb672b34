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

// ErrNotReady is what RunList returns, after the table, when a plugin cannot
// run: it is refused, quarantined, or failed to start.
var ErrNotReady = errors.New("cannot run")

// RunList is `finderbot plugins ls`: it starts every plugin in cfg.Dir the
// way the daemon would, writes the table of WriteList to out, and stops
// them. Plugins cannot call back into a daemon meanwhile; listing needs only
// their descriptions. Problems go to errOut as log records. When a plugin
// cannot run, the error returned after the table matches ErrNotReady and
// names them.
func RunList(ctx context.Context, out, errOut io.Writer, cfg Config, verbose bool) error {
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	infos, err := Probe(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := WriteList(out, infos, verbose); err != nil {
		return err
	}
	var down []string
	for _, in := range infos {
		if in.State != StateReady {
			down = append(down, fmt.Sprintf("%s (%s)", in.Name, in.State))
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("plugins: %d of %d %w: %s", len(down), len(infos), ErrNotReady, strings.Join(down, ", "))
	}
	return nil
}

// Probe starts every plugin in cfg.Dir the way the daemon would, with a host
// that refuses every callback, and returns what List says once each has
// started or failed to, after stopping them. log receives the Manager's
// records.
func Probe(ctx context.Context, cfg Config, log *slog.Logger) ([]Info, error) {
	m, err := New(cfg, offlineHost{}, log)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		m.Close()
		return nil, err
	}
	infos := m.List()
	if err := m.Close(); err != nil {
		return nil, err
	}
	return infos, nil
}

// CheckAction returns a function that says what keeps a rule from calling
// plugin.action among infos, the plugins Probe found in dir: the plugin is
// missing, refused or cannot start, or lacks the action. It returns "" when
// the action can be called.
func CheckAction(infos []Info, dir string) func(plugin, action string) string {
	byName := make(map[string]Info, len(infos))
	for _, in := range infos {
		byName[in.Name] = in
	}
	return func(plugin, action string) string {
		in, ok := byName[plugin]
		switch {
		case !ok:
			return fmt.Sprintf("no plugin %q: %s holds no executable of that name", plugin, dir)
		case in.State == StateRefused:
			return fmt.Sprintf("plugin %q is %s", plugin, in.Problem)
		case in.State != StateReady:
			return fmt.Sprintf("plugin %q cannot run (%s): %s", plugin, in.State, in.Problem)
		}
		for _, a := range in.Actions {
			if a.Name == action {
				return ""
			}
		}
		names := make([]string, len(in.Actions))
		for i, a := range in.Actions {
			names[i] = a.Name
		}
		offers := "no actions"
		if len(names) > 0 {
			offers = strings.Join(names, ", ")
		}
		return fmt.Sprintf("plugin %q has no action %q; it offers %s", plugin, action, offers)
	}
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
		fmt.Fprintf(w, "  output dropped: %d lines, %d bytes\n", in.DroppedLines, in.DroppedBytes)
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
