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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/finderbot/finderbot/engine"
	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/rules"
)

func main() {
	plugins.RunShimIfRequested() // a plugin's supervisor, started by the daemon
	// Signals are taken first, before the command line is even parsed.
	// SIGHUP's default action ends the process: one sent while the daemon
	// starts is kept for it to reload the rules once it runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx := stopOnSignal()
	err := newRootCmd(hup).ExecuteContext(ctx)
	if err != nil {
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		fmt.Fprintln(os.Stderr, "finderbot:", err)
		os.Exit(1)
	}
}

// stopOnSignal returns a context cancelled by the first SIGINT or SIGTERM,
// which asks the command to stop cleanly; a second one ends the process at
// once, whatever the first is still waiting for.
func stopOnSignal() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cancel()
		s := <-sig
		fmt.Fprintf(os.Stderr, "finderbot: %v again: exiting without waiting for the shutdown to finish\n", s)
		os.Exit(1)
	}()
	return ctx
}

// exitCode is returned by commands that have already reported their problem
// (for example a failed rule test) and only need the process to exit non-zero.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newRootCmd returns the finderbot command; hup receives SIGHUP, for the
// daemon to reload its rules.
func newRootCmd(hup chan os.Signal) *cobra.Command {
	run := newRunCmd(hup)
	root := &cobra.Command{
		Use:           "finderbot",
		Short:         "Automate WeChat Finder private messages with rules and plugins",
		Version:       buildVersion(debug.ReadBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			// Only the daemon has a use for SIGHUP; the other commands
			// end on it, as commands do when their terminal goes away.
			if cmd != run && hup != nil {
				signal.Stop(hup)
			}
		},
	}
	root.SetVersionTemplate("finderbot {{.Version}}\n")
	root.AddCommand(
		run,
		newLoginCmd(),
		newCheckCmd(),
		newTestCmd(),
		newReplayCmd(),
		newPluginsCmd(),
		newSimCmd(),
		newStoreCmd(),
		newClusterCmd(),
		newStatusCmd(),
		newDeadLettersCmd(),
		newReloadCmd(),
		newHealthzCmd(),
		newVersionCmd(),
	)
	return root
}

func newRunCmd(hup <-chan os.Signal) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: keep the accounts online, sync messages, run the rules, send the answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return engine.Run(cmd.Context(), cfgPath, cmd.ErrOrStderr(), cmd.OutOrStdout(), hup)
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
		statePath   string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve a simulated wkteam upstream (plus the token and app-key login APIs) for trying finderbot",
		Long: `sim serves a copy of the upstream APIs finderbot talks to, seeded with the real Finder page
of the upstream documentation. Drive it with curl; GET /_sim/ lists its control API. With --state
it keeps its accounts, instances and messages in a file and resumes from it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			opts := sim.Options{AutoConfirm: autoConfirm, NoSeed: noSeed, Logger: logger}
			if statePath != "" {
				st, err := sim.OpenState(statePath)
				if err != nil {
					return err
				}
				defer st.Close()
				opts.State = st
			}
			return sim.Run(cmd.Context(), listen, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9100", "the address to serve on")
	cmd.Flags().BoolVar(&autoConfirm, "auto-confirm", true, "confirm login QR scans at once (false: confirm with POST /_sim/confirm)")
	cmd.Flags().BoolVar(&noSeed, "no-seed", false, "start accounts with no messages instead of the seed page")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "log warnings only")
	cmd.Flags().StringVar(&statePath, "state", "", "keep the simulator's state in this file and resume from it (default: in memory)")
	cmd.AddCommand(newSimInjectCmd())
	return cmd
}

func newSimInjectCmd() *cobra.Command {
	var cfgPath, statePath, wcID, from string
	cmd := &cobra.Command{
		Use:   "inject TEXT",
		Short: "Have a stranger write TEXT to a simulated account, whether the daemon runs or not",
		Long: `inject adds a text message to the Finder messages of an account of the simulated upstream
whose state is in the state directory of --config (base_url: sim), or in --state. While a daemon
(or finderbot sim --state) serves that simulator, the message goes through it; otherwise it is
written into the state, and the daemon answers it when it starts again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := statePath
			if path == "" {
				cfg, err := config.Load(cfgPath)
				if err != nil {
					return err
				}
				if cfg.Upstream.BaseURL != config.SimURL {
					return fmt.Errorf("%s: upstream.base_url is %q, not sim: there is no simulator to inject into", cfgPath, cfg.Upstream.BaseURL)
				}
				path = filepath.Join(cfg.StateDir, engine.SimStateFile)
			}
			acct, msgs, err := sim.InjectFile(cmd.Context(), path, wcID, sim.Text(from, args[0]))
			if err != nil {
				return err
			}
			for _, m := range msgs {
				fmt.Fprintf(cmd.OutOrStdout(), "injected into %s: %q from %s (NewMsgId %d)\n", acct, m.Content, m.From, m.ID)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "finderbot.yaml", "the configuration whose state directory holds the simulator")
	cmd.Flags().StringVar(&statePath, "state", "", "the simulator's state file, instead of the one of --config")
	cmd.Flags().StringVar(&wcID, "wcid", "", "the WeChat account (default: the only one)")
	cmd.Flags().StringVar(&from, "from", "", "the sender's user name (default: the account's stranger)")
	return cmd
}

func newPluginsCmd() *cobra.Command {
	var dir, lockPath string
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "Pin, list and write out-of-process plugins",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "plugins", "the plugin directory")
	cmd.PersistentFlags().StringVar(&lockPath, "lock", "", "the lock file of pinned checksums (default: plugins.lock in --dir)")
	lock := &cobra.Command{
		Use:   "lock",
		Short: "Pin the SHA-256 of every plugin executable in --dir (writes plugins.lock)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return plugins.RunLock(cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, lockPath)
		},
	}
	var dev, verbose bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "Start every plugin in --dir, list its version, actions and health, then stop it; exit 1 if one cannot run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := plugins.Config{Dir: dir, LockFile: lockPath, DevMode: dev}
			return plugins.RunList(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, verbose)
		},
	}
	ls.Flags().BoolVar(&dev, "dev", false, "also run unpinned or changed plugins (plugin development only)")
	ls.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each action's parameters")
	var moduleDir string
	create := &cobra.Command{
		Use:   "new NAME [--dir DIR]",
		Short: "Write a new plugin module: main.go, its test, a README, go.mod and the SDK's source",
		Long: `new writes a Go module for a new plugin named NAME into DIR (default ./NAME): main.go
with one action, main_test.go testing it through sdktest, README.md, go.mod and go.sum, and
in internal/finderbot-sdk the source of the SDK this finderbot was built with, which go.mod
builds against. go test ./... and go build then work there with nothing but the Go module
proxy. DIR must not exist or be empty.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return plugins.RunNew(cmd.OutOrStdout(), args[0], moduleDir, buildVersion(debug.ReadBuildInfo()))
		},
	}
	// This --dir is the new module's, and hides the plugin directory's.
	create.Flags().StringVar(&moduleDir, "dir", "", "the directory of the new module (default ./NAME)")
	cmd.AddCommand(lock, ls, create)
	return cmd
}

// ruleFlags are the flags every rule command shares.
type ruleFlags struct {
	timezone string
	plugins  string
}

func (f *ruleFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.timezone, "timezone", "Asia/Shanghai", "the time zone of cron schedules and time helpers")
	cmd.Flags().StringVar(&f.plugins, "plugins", "", "comma-separated plugin actions that exist (crm.record,...); refuse others")
}

func (f *ruleFlags) options() (rules.Options, error) {
	loc, err := rules.LoadLocation(f.timezone)
	return rules.Options{Location: loc, Plugins: rules.ParsePlugins(f.plugins)}, err
}

func newCheckCmd() *cobra.Command {
	var (
		f            ruleFlags
		cfgPath      string
		explainIndex bool
	)
	cmd := &cobra.Command{
		Use:   "check PATH... | check --config FILE",
		Short: "Compile and lint rule files (files or directories); exit 1 with every problem found",
		Long: `check compiles and lints rule files. With --config it checks the rules of a configuration
against its plugins too: every plugin action a rule calls must exist in a plugin that can run.
With --explain-index it also prints how the rule index holds the rules: which are looked up by
what, and which are evaluated for every message and why, the rules that make a large set slow.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case cfgPath == "" && len(args) == 0:
				return fmt.Errorf("give rule files or directories, or --config FILE")
			case cfgPath != "" && len(args) > 0:
				return fmt.Errorf("give rule files or directories, or --config FILE, not both")
			case cfgPath != "" && (cmd.Flags().Changed("timezone") || cmd.Flags().Changed("plugins")):
				return fmt.Errorf("--config takes the time zone and the plugins from the configuration; drop --timezone and --plugins")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath != "" {
				ok, err := engine.Check(cmd.Context(), cfgPath, explainIndex, cmd.OutOrStdout(), cmd.ErrOrStderr())
				if err == nil && !ok {
					err = exitCode(1)
				}
				return err
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			check := rules.Check
			if explainIndex {
				check = rules.CheckExplainIndex
			}
			if !check(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts, args...) {
				return exitCode(1)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "check the rules of this configuration against its plugins")
	cmd.Flags().BoolVar(&explainIndex, "explain-index", false, "also print which rules the index looks up by what, and which it evaluates for every message and why")
	return cmd
}

func newTestCmd() *cobra.Command {
	var f ruleFlags
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run rule tests (*_test.yaml files, or directories of them); exit 1 if any fails",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			if !rules.Test(cmd.OutOrStdout(), cmd.ErrOrStderr(), opts, args...) {
				return exitCode(1)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newReplayCmd() *cobra.Command {
	var (
		f       ruleFlags
		paths   []string
		account string
		at      string
		explain bool
	)
	cmd := &cobra.Command{
		Use:   "replay --rules PATH PAGE.json",
		Short: "Run a recorded /syncFinder reply through the rules and show what each message triggers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			ro := rules.ReplayOptions{Account: account, Explain: explain}
			if at != "" {
				if ro.Now, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at: want a time such as 2026-11-20T09:00:00+08:00: %w", err)
				}
			}
			return rules.ReplayFile(cmd.OutOrStdout(), opts, paths, args[0], ro)
		},
	}
	f.add(cmd)
	cmd.Flags().StringSliceVar(&paths, "rules", nil, "rule files or directories (repeatable)")
	cmd.Flags().StringVar(&account, "account", "replay", "the account name the rules see")
	cmd.Flags().StringVar(&at, "at", "", "evaluate every message at this time (default: each message's own time)")
	cmd.Flags().BoolVar(&explain, "explain", false, "also show why each rule did not match")
	_ = cmd.MarkFlagRequired("rules")
	return cmd
}

func newLoginCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "login NAME",
		Short: "Log an account or session in at the terminal and save it, so that run starts online",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return engine.Login(cmd.Context(), cfgPath, args[0], cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "finderbot.yaml", "the configuration file")
	return cmd
}

func newStoreCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Back up and check the store (through the running daemon, or its file when none runs)",
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "finderbot.yaml", "the configuration file")
	backup := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent, checked copy of the store to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return engine.StoreBackup(cmd.Context(), cfgPath, args[0], cmd.OutOrStdout())
		},
	}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a store file, or the configured store; print ok with counts, or each problem and exit 1",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			ok, err := engine.StoreCheck(cmd.Context(), cfgPath, file, cmd.OutOrStdout())
			if err == nil && !ok {
				return exitCode(1)
			}
			return err
		},
	}
	cmd.AddCommand(backup, check)
	return cmd
}

func newClusterCmd() *cobra.Command {
	var (
		cfgPath  string
		accounts bool
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the daemons sharing accounts through NATS JetStream (store.kind nats)",
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show which daemon holds which accounts, the lease ages and the stream's replicas, read from NATS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return engine.PrintCluster(cmd.Context(), cfgPath, cmd.OutOrStdout(), accounts, asJSON)
		},
	}
	status.Flags().StringVarP(&cfgPath, "config", "c", "finderbot.yaml", "the configuration file, whose store section reaches NATS")
	status.Flags().BoolVar(&accounts, "accounts", false, "list every account with its holder")
	status.Flags().BoolVar(&asJSON, "json", false, "print the view as JSON")
	cmd.AddCommand(status)
	return cmd
}

// adminFlags are the flags of the commands that act on a running daemon
// through its admin API.
type adminFlags struct{ config, addr, token string }

func (f *adminFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&f.config, "config", "c", "finderbot.yaml", "the configuration file, whose admin.listen and admin.token reach the daemon")
	cmd.PersistentFlags().StringVar(&f.addr, "addr", "", "the daemon's admin address (host:port), instead of admin.listen")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "the admin token, instead of admin.token")
}

// target is the daemon the flags name: with --addr, the configuration is
// read only when --config is given too.
func (f *adminFlags) target(cmd *cobra.Command) admin.Target {
	t := admin.Target{Config: f.config, Addr: f.addr, Token: f.token}
	if f.addr != "" && !cmd.Flag("config").Changed {
		t.Config = ""
	}
	return t
}

func newStatusCmd() *cobra.Command {
	var (
		f      adminFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running daemon's accounts, sessions and plugins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return admin.PrintStatus(cmd.Context(), f.target(cmd), cmd.OutOrStdout(), asJSON)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the daemon's /api/status body as it is")
	return cmd
}

func newDeadLettersCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:     "deadletters",
		Aliases: []string{"dead-letters"},
		Short:   "List, retry and drop the running daemon's dead letters (actions given up on)",
	}
	f.add(cmd)
	var (
		asJSON bool
		limit  int
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the dead letters, oldest first, each with its reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return admin.PrintDeadLetters(cmd.Context(), f.target(cmd), cmd.OutOrStdout(), limit, asJSON)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print the daemon's /api/dead-letters body as it is")
	ls.Flags().IntVar(&limit, "limit", 0, "list at most this many (0 for all)")
	var (
		all  bool
		kind string
	)
	retry := &cobra.Command{
		Use:   "retry ID | retry --all [--kind KIND]",
		Short: "Queue a dead letter again (a send in doubt may go out twice: check first)",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return fmt.Errorf("give a dead letter ID or --all, not both")
			case !all && len(args) != 1:
				return fmt.Errorf("give one dead letter ID (the ID column of finderbot deadletters ls), or --all")
			case !all && kind != "":
				return fmt.Errorf("--kind goes with --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				return admin.RetryDeadLetters(cmd.Context(), f.target(cmd), cmd.OutOrStdout(), kind)
			}
			id, err := deadLetterID(args[0])
			if err != nil {
				return err
			}
			return admin.RetryDeadLetter(cmd.Context(), f.target(cmd), cmd.OutOrStdout(), id)
		},
	}
	retry.Flags().BoolVar(&all, "all", false, "queue every dead letter again")
	retry.Flags().StringVar(&kind, "kind", "", "with --all: only the dead letters of this action kind (reply, send, plugin)")
	drop := &cobra.Command{
		Use:   "drop ID",
		Short: "Forget a dead letter",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := deadLetterID(args[0])
			if err != nil {
				return err
			}
			return admin.DropDeadLetter(cmd.Context(), f.target(cmd), cmd.OutOrStdout(), id)
		},
	}
	cmd.AddCommand(ls, retry, drop)
	return cmd
}

// deadLetterID parses a dead letter ID given on the command line.
func deadLetterID(arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a dead letter ID (the ID column of finderbot deadletters ls)", arg)
	}
	return id, nil
}

func newReloadCmd() *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running daemon reload its rules; exit 1 with each problem if a rule file is broken",
		Long: `reload asks the running daemon to compile its rule files again. When one is broken, the
daemon keeps the rules it had, and reload prints each problem with its file, line and column
and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return admin.Reload(cmd.Context(), f.target(cmd), cmd.OutOrStdout())
		},
	}
	f.add(cmd)
	return cmd
}

func newHealthzCmd() *cobra.Command {
	var (
		f       adminFlags
		ready   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthz",
		Short: "Ask the running daemon whether it is alive (or, with --ready, whether every account is online); exit 1 if not",
		Long: `healthz calls the admin API's /healthz (or /readyz) and prints the answer. It is the
HEALTHCHECK of the container image, which has no curl: finderbot healthz --addr 127.0.0.1:9090.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return admin.PrintHealth(ctx, f.target(cmd), cmd.OutOrStdout(), ready)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&ready, "ready", false, "ask /readyz: are all accounts online")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the finderbot module version and the VCS revision it was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "finderbot %s\n", buildVersion(debug.ReadBuildInfo()))
		},
	}
}
