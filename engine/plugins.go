package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
)

// newPlugins prepares the plugin manager when plugins.dir is configured.
func (d *Daemon) newPlugins() error {
	if d.cfg.Plugins.Dir == "" {
		return nil
	}
	pc := pluginConfig(d.cfg)
	pc.OnStateChange = d.publishPlugin
	m, err := plugins.New(pc, pluginHost{d}, d.log.With("component", "plugins"))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	d.pluginManager = m
	d.plugins = d.callPlugin
	return nil
}

// pluginConfig is the plugin manager's configuration in cfg.
func pluginConfig(cfg *config.Config) plugins.Config {
	pc := cfg.Plugins
	// Zero means none in the configuration, the default in plugins.Config.
	none := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	return plugins.Config{
		Dir:         pc.Dir,
		LockFile:    pc.LockFile,
		RunDir:      filepath.Join(cfg.StateDir, "plugins-run"),
		DevMode:     pc.Dev,
		CallTimeout: pc.CallTimeout,
		MemoryLimit: none(pc.MemoryLimitMiB << 20),
		Nice:        int(none(int64(pc.Nice))),
		Cgroup:      pc.Cgroup,
		CPUPercent:  int(none(int64(pc.CPUPercent))),
		Output: plugins.OutputLimits{
			LineBytes:      cfg.Plugins.Output.LineBytes,
			LinesPerSecond: cfg.Plugins.Output.LinesPerSecond,
			Burst:          cfg.Plugins.Output.Burst,
		},
	}
}

// Plugins returns the plugin manager, or nil when plugins are not
// configured.
func (d *Daemon) Plugins() *plugins.Manager { return d.pluginManager }

// callPlugin performs a plugin action from the outbox and turns its answer
// into outbox items: replies to the triggering message and sends.
func (d *Daemon) callPlugin(ctx context.Context, it store.Item) ([]store.Item, error) {
	req := &sdk.HandleRequest{ID: fmt.Sprintf("%s/%d", it.Account, it.ID), Action: it.Action, Params: it.Params, Message: it.Msg, Account: it.Account}
	if it.Msg == nil {
		req.Tick = &sdk.Tick{Schedule: it.Rule, Time: it.Created}
	}
	resp, err := d.pluginManager.Call(ctx, it.Plugin, it.Action, req)
	if err != nil {
		// A quarantined or refused plugin stays down until the operator
		// acts: its actions go to the dead letters at once rather than hold
		// up their conversations with retries.
		if plugins.Retryable(err) && !errors.Is(err, plugins.ErrQuarantined) && !errors.Is(err, plugins.ErrRefused) {
			return nil, err
		}
		return nil, outbox.Permanent(err)
	}
	// The manager has logged the answer's diagnostics, bounded.
	log := d.log.With("plugin", it.Plugin, "action", it.Action, "rule", it.Rule)
	var out []store.Item
	for i, r := range resp.Replies {
		if r.Image != "" && !strings.HasPrefix(r.Image, "http://") && !strings.HasPrefix(r.Image, "https://") {
			return nil, outbox.Permanent(fmt.Errorf("plugin %s.%s: reply %d: image %q is not an http:// or https:// URL; the upstream fetches the image from it", it.Plugin, it.Action, i+1, r.Image))
		}
		if it.Msg == nil || it.To == "" {
			log.Warn("plugin replied, but there is no message to answer; use a send", "text", r.Text)
			continue
		}
		text := r.Text
		if r.Image != "" {
			text = "" // an image reply sends the image alone
		}
		out = append(out, store.Item{Account: it.Account, Kind: store.KindReply, Rule: it.Rule, Text: text, Image: r.Image,
			To: it.To, My: it.My, Session: it.Session, MsgID: it.MsgID, Conversation: it.Conversation})
	}
	for _, s := range resp.Sends {
		out = append(out, d.sendItem(it.Account, it.Rule, s))
	}
	return out, nil
}

// sendItem addresses a plugin's send: a Finder private message when it
// names a session, a WeChat text message otherwise.
func (d *Daemon) sendItem(account, rule string, s sdk.Send) store.Item {
	if s.Account != "" {
		account = s.Account
	}
	it := store.Item{Account: account, Rule: rule, Text: s.Text, To: s.To}
	if s.Session != "" {
		it.Kind, it.Session, it.Conversation = store.KindReply, s.Session, s.Session
		if a := d.accounts[account]; a != nil {
			it.My = a.finderName()
		}
	} else {
		it.Kind, it.Conversation = store.KindSend, "to:"+s.To
	}
	return it
}

// pluginHost is the daemon side of the plugins' host callbacks.
type pluginHost struct{ d *Daemon }

var _ plugins.Host = pluginHost{}

func (h pluginHost) Send(ctx context.Context, plugin string, msg sdk.Send) error {
	if h.d.accounts[msg.Account] == nil {
		return fmt.Errorf("engine: plugin %s: no account named %q", plugin, msg.Account)
	}
	if strings.TrimSpace(msg.To) == "" || msg.Text == "" {
		return fmt.Errorf("engine: plugin %s: a send needs a receiver and a text", plugin)
	}
	items, err := h.d.store.Enqueue(ctx, []store.Item{h.d.sendItem(msg.Account, "plugin:"+plugin, msg)})
	if err != nil {
		return err
	}
	h.d.outbox.Add(items)
	return nil
}

func (h pluginHost) Get(ctx context.Context, plugin, key string) ([]byte, bool, error) {
	return h.d.store.KV(plugin).Get(ctx, key)
}

func (h pluginHost) Put(ctx context.Context, plugin, key string, value []byte) error {
	return h.d.store.KV(plugin).Put(ctx, key, value)
}

func (h pluginHost) Delete(ctx context.Context, plugin, key string) error {
	return h.d.store.KV(plugin).Delete(ctx, key)
}

func (h pluginHost) Keys(ctx context.Context, plugin, prefix string) ([]string, error) {
	return h.d.store.KV(plugin).List(ctx, prefix, 0)
}

func (h pluginHost) Token(ctx context.Context, plugin, session string) (string, error) {
	return h.d.SessionToken(ctx, session)
}
