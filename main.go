// Command finderbot automates WeChat Finder (视频号) private messages through
// an E云管家 (wkteam) style HTTP API: it keeps logins alive, syncs messages,
// runs YAML rules and out-of-process plugins, and answers through a durable,
// rate-limited outbox.
//
// main is thin on purpose: each subcommand parses its flags and calls a
// package that does the work.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/finderbot/finderbot/engine"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		fmt.Fprintln(os.Stderr, "finderbot:", err)
		os.Exit(1)
	}
}

// exitCode is returned by commands that have already reported their problem
// (for example a failed rule test) and only need the process to exit non-zero.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "finderbot",
		Short:         "Automate WeChat Finder private messages with rules and plugins",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newPluginsCmd(),
		newSimCmd(),
		newVersionCmd(),
	)
	return root
}

func newRunCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: keep the accounts online, sync messages, run the rules, send the answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return engine.Run(cmd.Context(), cfgPath, cmd.ErrOrStderr(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "finderbot.yaml", "the configuration file")
	return cmd
}

func newSimCmd() *cobra.Command {
	var (
		listen      string
		autoConfirm bool
		noSeed      bool
		quiet       bool
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve a simulated wkteam upstream (plus the token and app-key login APIs) for trying finderbot",
		Long: `sim serves an in-memory copy of the upstream APIs finderbot talks to, seeded with the real
Finder page of the upstream documentation. Drive it with curl; GET /_sim/ lists its control API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			opts := sim.Options{AutoConfirm: autoConfirm, NoSeed: noSeed, Logger: logger}
			return sim.Run(cmd.Context(), listen, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9100", "the address to serve on")
	cmd.Flags().BoolVar(&autoConfirm, "auto-confirm", true, "confirm login QR scans at once (false: confirm with POST /_sim/confirm)")
	cmd.Flags().BoolVar(&noSeed, "no-seed", false, "start accounts with no messages instead of the seed page")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "log warnings only")
	return cmd
}

func newPluginsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "Pin and list out-of-process plugins",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "plugins", "the plugin directory")
	lock := &cobra.Command{
		Use:   "lock",
		Short: "Pin the SHA-256 of every plugin executable in --dir (writes plugins.lock)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return plugins.RunLock(cmd.OutOrStdout(), cmd.ErrOrStderr(), dir)
		},
	}
	var dev, verbose bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "Start every plugin in --dir, list its version, actions and health, then stop it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := plugins.Config{Dir: dir, DevMode: dev}
			return plugins.RunList(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, verbose)
		},
	}
	ls.Flags().BoolVar(&dev, "dev", false, "also run unpinned or changed plugins (plugin development only)")
	ls.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each action's parameters")
	cmd.AddCommand(lock, ls)
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the finderbot version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
				v = info.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "finderbot %s\n", v)
		},
	}
}
