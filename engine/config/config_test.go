package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

const good = `state_dir: ./data
upstream:
  base_url: http://127.0.0.1:9100
  account: ${WKTEAM_ACCOUNT}
  password: ${WKTEAM_PASSWORD}
accounts:
  - name: shop
    wc_id: ""
rules:
  - ./rules
admin:
  listen: 127.0.0.1:9090
send:
  interval: 5s
`

func TestParseGood(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("finderbot.yaml", []byte(good), env(map[string]string{"WKTEAM_ACCOUNT": "13800000000", "WKTEAM_PASSWORD": "hunter2-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Account != "13800000000" || cfg.Upstream.Password.Reveal() != "hunter2-secret" {
		t.Errorf("credentials = %q %q", cfg.Upstream.Account, cfg.Upstream.Password.Reveal())
	}
	if cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("shutdown_timeout = %v, want the default 30s", cfg.ShutdownTimeout)
	}
	if cfg.Send.Interval != 5*time.Second || cfg.Send.MaxAttempts != 8 || cfg.Sync.IdleInterval != time.Second {
		t.Errorf("send/sync = %+v %+v", cfg.Send, cfg.Sync)
	}
	if o := cfg.Plugins.Output; o.LineBytes != 4096 || o.LinesPerSecond != 50 || o.Burst != 200 {
		t.Errorf("plugins.output defaults = %+v", o)
	}
	if st := cfg.Store; st.Kind != StoreBolt || st.SnapshotEvery != 6*time.Hour || st.SnapshotKeep != 4 {
		t.Errorf("store = %+v, want the embedded store, snapshots every 6h, 4 kept", cfg.Store)
	}
	if cfg.Console != (Console{MessagesPerAccount: 500, MessageMaxAge: 72 * time.Hour}) {
		t.Errorf("console = %+v, want 500 messages per account for 72h", cfg.Console)
	}
	if len(cfg.Accounts) != 1 || cfg.Accounts[0].Name != "shop" || cfg.Timezone != "Asia/Shanghai" {
		t.Errorf("cfg = %+v", cfg)
	}
	// The secret never prints.
	var logs strings.Builder
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", cfg, "password", cfg.Upstream.Password)
	js, _ := json.Marshal(cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v %#v", cfg, cfg), logs.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{"WKTEAM_ACCOUNT": "a", "WKTEAM_PASSWORD": "p"})
	tests := map[string]struct {
		in   string
		want []string
	}{
		"unknown key with suggestion": {
			in:   strings.Replace(good, "base_url", "base_urll", 1),
			want: []string{"finderbot.yaml:3:3: upstream.base_urll: unknown key (did you mean base_url?)"},
		},
		"wrong type": {
			in:   good + "sync:\n  idle_interval: soon\n",
			want: []string{"finderbot.yaml:16:18: sync.idle_interval: \"soon\" is not a duration"},
		},
		"zero shutdown timeout": {
			in:   good + "shutdown_timeout: 0s\n",
			want: []string{"finderbot.yaml:15:1: shutdown_timeout: must be positive"},
		},
		"missing variable": {
			in:   strings.Replace(good, "${WKTEAM_PASSWORD}", "${NOPE}", 1),
			want: []string{"upstream.password: environment variable NOPE is not set"},
		},
		"duplicate account": {
			in:   strings.Replace(good, "    wc_id: \"\"\n", "  - name: shop\n", 1),
			want: []string{"finderbot.yaml:8:5: accounts[1].name: \"shop\" is used twice"},
		},
		"public admin without token": {
			in:   strings.Replace(good, "127.0.0.1:9090", "0.0.0.0:9090", 1),
			want: []string{"admin.token: is required when admin.listen"},
		},
		"list expected": {
			in:   strings.Replace(good, "accounts:\n  - name: shop\n    wc_id: \"\"\n", "accounts: shop\n", 1),
			want: []string{"accounts: want a list"},
		},
		"zero duration": {
			in:   good + "sync:\n  idle_interval: 0\n",
			want: []string{"finderbot.yaml:16:3: sync.idle_interval: must be positive"},
		},
		"plugin output bound of zero": {
			in:   good + "plugins:\n  output: {line_bytes: 4096, burst: 0}\n",
			want: []string{"finderbot.yaml:16:30: plugins.output.burst: must be at least 1"},
		},
		"snapshots too often": {
			in:   good + "store: {snapshot_every: 10s}\n",
			want: []string{"finderbot.yaml:15:9: store.snapshot_every: is 10s; want 0 (no snapshots) or at least 1m"},
		},
		"negative conversation log": {
			in:   good + "console: {messages_per_account: -1}\n",
			want: []string{"console.messages_per_account: cannot be negative (0 keeps none)"},
		},
		"conversation log kept no time": {
			in:   good + "console: {message_max_age: 0s}\n",
			want: []string{"console.message_max_age: must be positive"},
		},
		"unknown store kind": {
			in:   good + "store: {kind: etcd}\n",
			want: []string{"store.kind: is \"etcd\", want bolt or nats"},
		},
		"nats store without servers": {
			in:   good + "store: {kind: nats, replicas: 7}\n",
			want: []string{"store.url: is required with kind nats", "store.replicas: is 7, want 1 to 5"},
		},
		"no snapshot kept": {
			in:   good + "store: {snapshot_keep: 0}\n",
			want: []string{"store.snapshot_keep: must be at least 1"},
		},
		"negative plugin memory": {
			in:   good + "plugins:\n  memory_limit_mib: -1\n",
			want: []string{"finderbot.yaml:16:3: plugins.memory_limit_mib: cannot be negative"},
		},
		"negative plugin CPU share": {
			in:   good + "plugins:\n  cpu_percent: -5\n",
			want: []string{"finderbot.yaml:16:3: plugins.cpu_percent: cannot be negative"},
		},
		"plugin niceness out of range": {
			in:   good + "plugins:\n  nice: 20\n",
			want: []string{"finderbot.yaml:16:3: plugins.nice: is 20, want 0 to 19"},
		},
		"bad yaml": {
			in:   "upstream: [\n",
			want: []string{"config: finderbot.yaml: line"},
		},
		"several problems at once": {
			in:   strings.Replace(strings.Replace(good, "account:", "acount:", 1), "name: shop", "name: 'a b'", 1),
			want: []string{"upstream.acount: unknown key (did you mean account?)"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("finderbot.yaml", []byte(tc.in), vars)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestScalarsDecodeAsChecked(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("q.yaml", []byte("upstream: {base_url: sim}\naccounts: [{name: shop, proxy: '+02'}]\nplugins: {dev: t}\nsend: {retry_backoff: '1s', burst: 007}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Plugins.Dev || cfg.Accounts[0].Proxy != 2 || cfg.Send.Burst != 7 || cfg.Send.RetryBackoff != time.Second {
		t.Errorf("cfg = %+v %+v %+v", cfg.Plugins, cfg.Accounts, cfg.Send)
	}
}

func TestPluginLimitsAndLockFile(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("q.yaml", []byte("upstream: {base_url: sim}\naccounts: [{name: shop}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Plugins; p.MemoryLimitMiB != 4096 || p.Nice != 10 || p.LockFile != "" || p.CPUPercent != 100 || p.Cgroup != "" {
		t.Errorf("defaults = %+v", p)
	}
	cfg, err = Parse("q.yaml", []byte("upstream: {base_url: sim}\naccounts: [{name: shop}]\nplugins: {dir: ./p, lock_file: ./pins/plugins.lock, memory_limit_mib: 0, nice: 0, cgroup: /sys/fs/cgroup/fb, cpu_percent: 50}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.resolvePaths("/etc/finderbot")
	if p := cfg.Plugins; p.MemoryLimitMiB != 0 || p.Nice != 0 || p.LockFile != "/etc/finderbot/pins/plugins.lock" || p.Dir != "/etc/finderbot/p" ||
		p.Cgroup != "/sys/fs/cgroup/fb" || p.CPUPercent != 50 {
		t.Errorf("plugins = %+v", p)
	}
}

func TestSimNeedsNoCredentials(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("q.yaml", []byte("upstream: {base_url: sim}\naccounts: [{name: shop}]\nrules: ./rules\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 1 || cfg.Rules[0] != "./rules" {
		t.Errorf("rules = %v", cfg.Rules)
	}
}
