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
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
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
		newVersionCmd(),
	)
	return root
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
