package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/rules"
)

// Check is `finderbot check --config FILE`: it loads the configuration,
// starts its plugins the way `finderbot plugins ls` does, and compiles its
// rules, writing every problem to stderr, positioned in the rule files.
// Beside the rule language's own problems, that is each plugin action whose
// plugin is missing, refused (its dev mode honoured) or cannot start, or
// lacks the action. Check reports whether the rules are sound; the error is
// for a configuration or plugin directory that cannot be read. With
// explainIndex, sound rules are followed by how the index holds them
// (rules.Set.ExplainIndex).
func Check(ctx context.Context, path string, explainIndex bool, stdout, stderr io.Writer) (bool, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return false, err
	}
	opts := rules.Options{Location: cfg.Location()}
	if cfg.Plugins.Dir == "" {
		opts.PluginProblem = func(string, string) string {
			return fmt.Sprintf("no plugins are configured (plugins.dir in %s)", path)
		}
	} else {
		// What goes wrong with a plugin is in its Info, which the problems quote.
		pc := pluginConfig(cfg)
		// A running daemon owns <state_dir>/plugins-run; the probe runs its
		// copies from a directory of its own.
		pc.RunDir = ""
		infos, err := plugins.Probe(ctx, pc, slog.New(slog.DiscardHandler))
		if err != nil {
			return false, err
		}
		opts.PluginProblem = plugins.CheckAction(infos, cfg.Plugins.Dir)
	}
	check := rules.Check
	if explainIndex {
		check = rules.CheckExplainIndex
	}
	return check(stdout, stderr, opts, cfg.Rules...), nil
}
