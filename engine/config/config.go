// Package config loads the daemon's YAML configuration: strictly (an unknown
// key or a wrong type is refused with its key path and line), with ${VAR}
// read from the environment, defaults that work, and secrets that never
// print.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/finderbot/finderbot/rules/yamlpos"
	"github.com/finderbot/finderbot/sdk"
	"gopkg.in/yaml.v3"
)

// SimURL is the base_url that makes the daemon start the simulated upstream
// in-process.
const SimURL = "sim"

// Config is the daemon's configuration file.
type Config struct {
	// StateDir holds the embedded store; created if missing.
	StateDir string `yaml:"state_dir"`
	// Upstream is the wkteam API the accounts log in through.
	Upstream Upstream `yaml:"upstream"`
	// Handoff pauses the bot in a conversation a person answered.
	Handoff Handoff `yaml:"handoff"`
	// Accounts are the WeChat accounts the daemon keeps logged in.
	Accounts []Account `yaml:"accounts"`
	// Sessions are the logins of other systems the daemon keeps alive for
	// plugins: kind token (mobile login with access and refresh tokens) or
	// appkey (app key and secret, one-day token).
	Sessions []Session `yaml:"sessions"`
	// Rules are rule files or directories of them.
	Rules []string `yaml:"rules"`
	// Timezone is the zone of cron schedules and time-of-day helpers.
	Timezone string `yaml:"timezone"`
	// ShutdownTimeout bounds a stop on SIGTERM or SIGINT: past it the
	// process exits non-zero, naming what it was still waiting for.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Admin is the HTTP endpoint for health, metrics and status.
	Admin Admin `yaml:"admin"`
	// Log configures the daemon's structured log.
	Log Log `yaml:"log"`
	// Sync paces the /syncFinder loop of each account.
	Sync Sync `yaml:"sync"`
	// Send paces and retries outbound messages.
	Send Send `yaml:"send"`
	// Plugins configures out-of-process plugins.
	Plugins Plugins `yaml:"plugins"`
	// Store chooses where the state is kept: the embedded store (the
	// default), or NATS JetStream shared by several daemons.
	Store Store `yaml:"store"`
	// Console bounds what the daemon keeps for people watching it.
	Console Console `yaml:"console"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
}

// Upstream is the wkteam API endpoint and its member login.
type Upstream struct {
	// BaseURL is the API root, or "sim" for the built-in simulator.
	BaseURL string `yaml:"base_url"`
	// Account and Password are the /member/login credentials.
	Account  string `yaml:"account"`
	Password Secret `yaml:"password"`
	// Timeout bounds ordinary calls; the login long poll has its own.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConnsPerHost bounds the connections to the API host.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
	// ImageReply is the shape of the image reply call. It comes from the
	// public wkteam endpoint catalog, not from the API documents, so
	// every name in it can be changed.
	ImageReply ImageReply `yaml:"image_reply"`
}

// ImageReply names the endpoint and the body fields of an image reply; an
// empty my_user_name or session_id leaves that field out.
type ImageReply struct {
	Endpoint   string `yaml:"endpoint"`
	WID        string `yaml:"w_id"`
	ToUserName string `yaml:"to_user_name"`
	MyUserName string `yaml:"my_user_name"`
	SessionID  string `yaml:"session_id"`
	ImgURL     string `yaml:"img_url"`
}

// Handoff is what happens when a person answers a conversation from the
// phone: the bot's automated replies there pause.
type Handoff struct {
	// Pause is how long after the person's latest message the
	// conversation stays paused; 0 turns takeover detection off.
	Pause time.Duration `yaml:"pause"`
	// Queued is what becomes of the actions already queued in the
	// conversation when it pauses: "hold" keeps them until the pause
	// ends, "drop" removes them.
	Queued string `yaml:"queued"`
}

// Account is one WeChat account.
type Account struct {
	// Name identifies the account in rules, logs and the status API.
	Name string `yaml:"name"`
	// WcID is the WeChat id; learned at the first login and kept in the
	// store when empty.
	WcID string `yaml:"wc_id"`
	// DeviceType is the device /iPadLogin presents ("ipad" or "mac").
	DeviceType string `yaml:"device_type"`
	// Proxy is the /iPadLogin proxy region, 0 for none.
	Proxy int `yaml:"proxy"`
}

// Session kinds.
const (
	KindToken  = "token"
	KindAppKey = "appkey"
)

// Session is a login of another system, kept alive for plugins.
type Session struct {
	// Name identifies the session to plugins and in events.
	Name string `yaml:"name"`
	// Kind is "token" or "appkey".
	Kind string `yaml:"kind"`
	// BaseURL is the API root, or "sim" for the built-in simulator.
	BaseURL string `yaml:"base_url"`

	// Mobile, ValidateNo, CompanyType, ProductType and Source are the
	// token kind's /auth/mobile/login fields. Without ValidateNo the code
	// is asked of a person when a login is needed.
	Mobile      string `yaml:"mobile"`
	ValidateNo  Secret `yaml:"validate_no"`
	CompanyType int    `yaml:"company_type"`
	ProductType int    `yaml:"product_type"`
	Source      string `yaml:"source"`
	// DeviceNumber is checked for logins taken by another device.
	DeviceNumber string `yaml:"device_number"`
	// RefreshMargin is how long before expiry the access token is
	// refreshed.
	RefreshMargin time.Duration `yaml:"refresh_margin"`
	// CheckInterval is how often the login is checked.
	CheckInterval time.Duration `yaml:"check_interval"`

	// AppKey, AppSecret and Encrypt are the appkey kind's login fields.
	AppKey    string `yaml:"app_key"`
	AppSecret Secret `yaml:"app_secret"`
	Encrypt   bool   `yaml:"encrypt"`
	// RenewMargin is how long before the day is over the token is renewed.
	RenewMargin time.Duration `yaml:"renew_margin"`
}

// Admin is the admin HTTP listener.
type Admin struct {
	// Listen is host:port; empty disables the listener.
	Listen string `yaml:"listen"`
	// Token is the bearer token required when Listen is not loopback.
	Token Secret `yaml:"token"`
}

// Log configures logging.
type Log struct {
	// Format is "text" or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `yaml:"level"`
}

// Sync paces the sync loop.
type Sync struct {
	// IdleInterval is the pause between polls that returned nothing.
	IdleInterval time.Duration `yaml:"idle_interval"`
	// BusyInterval is the pause after a poll that returned messages.
	BusyInterval time.Duration `yaml:"busy_interval"`
	// MaxBackoff caps the pause after failing polls.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// OnlineCheck is how often /isOnline is asked while all is well.
	OnlineCheck time.Duration `yaml:"online_check"`
	// Concurrency bounds the polls in flight at once, across accounts.
	Concurrency int `yaml:"concurrency"`
}

// Send paces and retries outbound actions.
type Send struct {
	// Interval is the least time between two sends of one account.
	Interval time.Duration `yaml:"interval"`
	// Burst is how many sends may go back to back after a quiet time.
	Burst int `yaml:"burst"`
	// Jitter is a random extra pause up to this long before each send, so
	// that sends do not look machine-made.
	Jitter time.Duration `yaml:"jitter"`
	// MaxAttempts is how many failed attempts send an action to the dead
	// letters.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the first pause after a failed attempt; it doubles
	// up to MaxRetryBackoff.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
}

// Plugins configures plugin discovery.
type Plugins struct {
	// Dir holds plugin executables and their plugins.lock; empty disables
	// plugins.
	Dir string `yaml:"dir"`
	// Dev accepts binaries that are not pinned in plugins.lock.
	Dev bool `yaml:"dev"`
	// CallTimeout bounds each plugin call.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// CallsPerAccount is how many plugin actions of one account may be
	// under way at once, each in its own conversation, so that a slow
	// plugin (a language model) holds up only the conversations waiting
	// for it; 0 calls them one at a time.
	CallsPerAccount int `yaml:"calls_per_account"`
	// LockFile is the file of pinned checksums; empty for plugins.lock in
	// Dir. Keeping it elsewhere lets the plugin directory be written by a
	// deploy step that cannot also change the pins.
	LockFile string `yaml:"lock_file"`
	// MemoryLimitMiB bounds each plugin process's address space (a Go
	// plugin reserves 1.6–1.7 GiB before it allocates anything); 0 for
	// no limit.
	MemoryLimitMiB int64 `yaml:"memory_limit_mib"`
	// Nice is the scheduling niceness plugin processes run at, 0 to 19; 0
	// leaves them at the daemon's.
	Nice int `yaml:"nice"`
	// Cgroup is a cgroup v2 directory delegated to the daemon that enables
	// the memory controller for its children; each plugin then runs in a
	// cgroup of its own there, MemoryLimitMiB being its memory.max (real
	// memory) instead of its address space. Empty: the daemon's own cgroup
	// if it qualifies, else none.
	Cgroup string `yaml:"cgroup"`
	// CPUPercent bounds each plugin to this share of one CPU (cpu.max)
	// when plugins run in cgroups with the cpu controller; 0 for no bound.
	CPUPercent int `yaml:"cpu_percent"`
	// Output bounds what each plugin may have the daemon log.
	Output PluginOutput `yaml:"output"`
}

// PluginOutput bounds what one plugin may have the daemon log (its standard
// output and error, its log records, its diagnostics); what is past the
// bounds is dropped, counted and reported.
type PluginOutput struct {
	// LineBytes bounds one line; the rest of a longer one is dropped.
	LineBytes int `yaml:"line_bytes"`
	// LinesPerSecond and Burst are a token bucket of lines.
	LinesPerSecond int `yaml:"lines_per_second"`
	Burst          int `yaml:"burst"`
}

// Store kinds.
const (
	StoreBolt = "bolt"
	StoreNATS = "nats"
)

// Store chooses the store. The embedded one (kind bolt) keeps the state
// under state_dir, with periodic snapshots: verified copies under
// <state_dir>/snapshots to restore when the store is damaged. Kind nats
// keeps it in NATS JetStream, where several daemons share the accounts,
// each held by one of them at a time.
type Store struct {
	// Kind is "bolt" (the default) or "nats".
	Kind string `yaml:"kind"`
	// SnapshotEvery is how often a snapshot is taken; 0 turns them off.
	SnapshotEvery time.Duration `yaml:"snapshot_every"`
	// SnapshotKeep is how many snapshots are kept, the newest.
	SnapshotKeep int `yaml:"snapshot_keep"`

	// URL lists the NATS servers, comma-separated (kind nats).
	URL string `yaml:"url"`
	// Credentials is a NATS credentials (.creds) file, when the servers
	// require one.
	Credentials string `yaml:"credentials"`
	// Stream names the JetStream stream of the state; the buckets of the
	// leases take it as their prefix.
	Stream string `yaml:"stream"`
	// Replicas is how many servers keep each write (3 in a three-node
	// cluster; 1 on a lone server).
	Replicas int `yaml:"replicas"`
	// Node names this daemon among those sharing the stream (default the
	// host name and process id); it must be unique.
	Node string `yaml:"node"`
	// LeaseTTL is how long an account stays with a daemon that stopped
	// renewing its lease: the longest failover.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// MovesPerSecond bounds how many accounts a daemon hands over per
	// second when a new daemon joins, so that logins move gradually.
	MovesPerSecond float64 `yaml:"moves_per_second"`
	// SnapshotEvents is how many events of an account go into the stream
	// between two snapshots of its state, after each of which the events
	// before it are purged (0 for the default, 1,000; negative: never,
	// and the stream keeps every event).
	SnapshotEvents int `yaml:"snapshot_events"`
}

// Console bounds the conversation log: each account's recent messages,
// with the rules they fired and the actions they queued, kept in the store
// with the pages they came in.
type Console struct {
	// MessagesPerAccount is how many messages the log keeps per account;
	// 0 keeps none.
	MessagesPerAccount int `yaml:"messages_per_account"`
	// MessageMaxAge is how long the log keeps a message.
	MessageMaxAge time.Duration `yaml:"message_max_age"`
}

// Secret is a string that never prints: String, logging and JSON show
// "[redacted]". Reveal returns the value.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer, so %#v does not print it either.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText implements encoding.TextMarshaler (JSON, slog).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Default returns the configuration used for keys the file leaves out.
func Default() Config {
	return Config{
		StateDir: "./data",
		Timezone: "Asia/Shanghai",
		Upstream: Upstream{Timeout: 30 * time.Second, MaxConnsPerHost: 512, ImageReply: ImageReply{
			Endpoint: "/privateSendImg", WID: "wId", ToUserName: "toUserName", SessionID: "sessionId", ImgURL: "imgUrl",
		}},
		Handoff: Handoff{Pause: 30 * time.Minute, Queued: "drop"},
		Admin:   Admin{Listen: "127.0.0.1:9090"},
		Log:     Log{Format: "text", Level: "info"},
		Sync: Sync{
			IdleInterval: time.Second,
			BusyInterval: 100 * time.Millisecond,
			MaxBackoff:   time.Minute,
			OnlineCheck:  time.Minute,
			Concurrency:  1024,
		},
		ShutdownTimeout: 30 * time.Second,
		Send: Send{
			Interval:        3 * time.Second,
			Burst:           2,
			Jitter:          1500 * time.Millisecond,
			MaxAttempts:     8,
			RetryBackoff:    2 * time.Second,
			MaxRetryBackoff: 5 * time.Minute,
		},
		Plugins: Plugins{CallTimeout: 10 * time.Second, CallsPerAccount: 16, MemoryLimitMiB: 4096, Nice: 10, CPUPercent: 100, Output: PluginOutput{LineBytes: 4096, LinesPerSecond: 50, Burst: 200}},
		Store: Store{Kind: StoreBolt, SnapshotEvery: 6 * time.Hour, SnapshotKeep: 4,
			Stream: "FINDERBOT", Replicas: 3, LeaseTTL: 15 * time.Second, MovesPerSecond: 2},
		Console: Console{MessagesPerAccount: 500, MessageMaxAge: 72 * time.Hour},
	}
}

// MaxFileSize bounds the configuration file: a real one is a few KiB, and a
// larger file is a mistake (a log or a binary given by accident).
const MaxFileSize = sdk.MaxFileSize

// Load reads and validates the configuration file at path. Relative paths
// in it (state_dir, rules, plugins.dir) are taken relative to the file.
func Load(path string) (*Config, error) {
	data, err := sdk.ReadFile(path, MaxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config: %s does not exist; pass --config FILE, or start from examples/quickstart/finderbot.yaml", path)
	}
	if errors.Is(err, sdk.ErrTooLarge) {
		return nil, fmt.Errorf("config: %w; is it the right file?", err)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

// Parse decodes and validates configuration text; name is used in errors and
// lookupEnv resolves ${VAR}.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if !yamlLine.MatchString(msg) {
			// The YAML reader names no position for bad characters and
			// for a document cut short: find it.
			line, col := yamlpos.SyntaxPos(data)
			return nil, fmt.Errorf("config: %s:%d:%d: %s", name, line, col, msg)
		}
		return nil, fmt.Errorf("config: %s: %s", name, msg)
	}
	cfg := Default()
	cfg.Path = name
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("config: %s: the file is empty", name)
	}
	root := doc.Content[0]
	var errs []error
	w := walker{file: name, env: lookupEnv, errs: &errs, raw: map[string]string{}}
	w.check(root, reflect.TypeOf(cfg), "")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				errs = append(errs, fmt.Errorf("config: %s: %s", name, e))
			}
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("config: %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := cfg.validate(root, w.show); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		p = filepath.Join(dir, p)
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	c.StateDir = abs(c.StateDir)
	if c.Store.Credentials != "" {
		c.Store.Credentials = abs(c.Store.Credentials)
	}
	for i := range c.Rules {
		c.Rules[i] = abs(c.Rules[i])
	}
	c.Plugins.Dir = abs(c.Plugins.Dir)
	c.Plugins.LockFile = abs(c.Plugins.LockFile)
	c.Plugins.Cgroup = abs(c.Plugins.Cgroup)
}

// Location returns the configured time zone.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}

// validate checks values; node gives positions for the errors and show
// quotes a value without revealing what came from the environment.
func (c *Config) validate(root *yaml.Node, show func(path, v string) string) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		line, col := position(root, path)
		errs = append(errs, fmt.Errorf("config: %s:%d:%d: %s: %s", c.Path, line, col, path, fmt.Sprintf(format, args...)))
	}
	if c.Upstream.BaseURL == "" {
		bad("upstream.base_url", `is required (an http(s) URL, or "sim" for the built-in simulator)`)
	} else if c.Upstream.BaseURL != SimURL && !strings.HasPrefix(c.Upstream.BaseURL, "http://") && !strings.HasPrefix(c.Upstream.BaseURL, "https://") {
		bad("upstream.base_url", `%s is not an http(s) URL or "sim"`, show("upstream.base_url", c.Upstream.BaseURL))
	}
	if c.Upstream.BaseURL != SimURL && (c.Upstream.Account == "" || c.Upstream.Password == "") {
		bad("upstream", "account and password are required")
	}
	if ir := c.Upstream.ImageReply; !strings.HasPrefix(ir.Endpoint, "/") {
		bad("upstream.image_reply.endpoint", "%q must begin with /", ir.Endpoint)
	}
	for path, v := range map[string]string{"upstream.image_reply.w_id": c.Upstream.ImageReply.WID,
		"upstream.image_reply.to_user_name": c.Upstream.ImageReply.ToUserName, "upstream.image_reply.img_url": c.Upstream.ImageReply.ImgURL} {
		if v == "" {
			bad(path, "must name the field (the default is the catalog's)")
		}
	}
	if c.Plugins.CallsPerAccount < 0 || c.Plugins.CallsPerAccount > 1024 {
		bad("plugins.calls_per_account", "want 0 to 1024, got %d", c.Plugins.CallsPerAccount)
	}
	if c.Handoff.Pause < 0 {
		bad("handoff.pause", "must not be negative (0 turns takeover detection off)")
	}
	if c.Handoff.Queued != "hold" && c.Handoff.Queued != "drop" {
		bad("handoff.queued", "%q: want hold or drop", c.Handoff.Queued)
	}
	if len(c.Accounts) == 0 {
		bad("accounts", "at least one account is required")
	}
	names := map[string]bool{}
	for i, a := range c.Accounts {
		p := fmt.Sprintf("accounts[%d].name", i)
		switch {
		case a.Name == "":
			bad(p, "is required")
		case !validName.MatchString(a.Name):
			bad(p, "%s may hold only letters, digits, '-', '_' and '.'", show(p, a.Name))
		case names[a.Name]:
			bad(p, "%s is used twice", show(p, a.Name))
		}
		names[a.Name] = true
		if a.DeviceType != "" && a.DeviceType != "ipad" && a.DeviceType != "mac" {
			dp := fmt.Sprintf("accounts[%d].device_type", i)
			bad(dp, `is %s, want "ipad" or "mac"`, show(dp, a.DeviceType))
		}
	}
	for i, sc := range c.Sessions {
		p := fmt.Sprintf("sessions[%d]", i)
		switch {
		case sc.Name == "":
			bad(p+".name", "is required")
		case !validName.MatchString(sc.Name):
			bad(p+".name", "%s may hold only letters, digits, '-', '_' and '.'", show(p+".name", sc.Name))
		case names[sc.Name]:
			bad(p+".name", "%s is used twice (account and session names share one space)", show(p+".name", sc.Name))
		}
		names[sc.Name] = true
		if sc.BaseURL == "" {
			bad(p+".base_url", "is required")
		}
		switch sc.Kind {
		case KindToken:
			if sc.Mobile == "" {
				bad(p+".mobile", "is required for kind token")
			}
		case KindAppKey:
			if sc.AppKey == "" || sc.AppSecret == "" {
				bad(p, "app_key and app_secret are required for kind appkey")
			}
		default:
			bad(p+".kind", `is %s, want "token" or "appkey"`, show(p+".kind", sc.Kind))
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("timezone", "%s is not a known time zone (write it like Asia/Shanghai or UTC)", show("timezone", c.Timezone))
	}
	if c.Admin.Listen != "" {
		host, _, err := net.SplitHostPort(c.Admin.Listen)
		if err != nil {
			bad("admin.listen", "%s is not host:port", show("admin.listen", c.Admin.Listen))
		} else if !isLoopback(host) && c.Admin.Token == "" {
			bad("admin.token", "is required when admin.listen (%s) is not a loopback address", show("admin.listen", c.Admin.Listen))
		}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", `is %s, want "text" or "json"`, show("log.format", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", `is %s, want "debug", "info", "warn" or "error"`, show("log.level", c.Log.Level))
	}
	positive := map[string]time.Duration{
		"sync.idle_interval": c.Sync.IdleInterval, "sync.max_backoff": c.Sync.MaxBackoff,
		"sync.online_check": c.Sync.OnlineCheck, "send.retry_backoff": c.Send.RetryBackoff,
		"send.max_retry_backoff": c.Send.MaxRetryBackoff, "upstream.timeout": c.Upstream.Timeout,
		"plugins.call_timeout": c.Plugins.CallTimeout, "shutdown_timeout": c.ShutdownTimeout,
		"console.message_max_age": c.Console.MessageMaxAge,
	}
	for _, k := range sortedKeys(positive) {
		if positive[k] <= 0 {
			bad(k, "must be positive")
		}
	}
	if c.Sync.BusyInterval < 0 || c.Send.Interval < 0 || c.Send.Jitter < 0 {
		bad("sync/send", "intervals cannot be negative")
	}
	if c.Sync.Concurrency < 1 {
		bad("sync.concurrency", "must be at least 1")
	}
	if c.Send.Burst < 1 {
		bad("send.burst", "must be at least 1")
	}
	if c.Send.MaxAttempts < 1 {
		bad("send.max_attempts", "must be at least 1")
	}
	atLeastOne := map[string]int{"plugins.output.line_bytes": c.Plugins.Output.LineBytes,
		"plugins.output.lines_per_second": c.Plugins.Output.LinesPerSecond, "plugins.output.burst": c.Plugins.Output.Burst}
	for _, k := range sortedKeys(atLeastOne) {
		if atLeastOne[k] < 1 {
			bad(k, "must be at least 1")
		}
	}
	if c.Store.SnapshotEvery != 0 && c.Store.SnapshotEvery < time.Minute {
		bad("store.snapshot_every", "is %s; want 0 (no snapshots) or at least 1m", c.Store.SnapshotEvery)
	}
	if c.Store.SnapshotKeep < 1 {
		bad("store.snapshot_keep", "must be at least 1")
	}
	switch c.Store.Kind {
	case StoreBolt:
	case StoreNATS:
		if c.Store.URL == "" {
			bad("store.url", "is required with kind nats: the NATS servers, e.g. nats://n1:4222,nats://n2:4222,nats://n3:4222")
		}
		if c.Store.Replicas < 1 || c.Store.Replicas > 5 {
			bad("store.replicas", "is %d, want 1 to 5", c.Store.Replicas)
		}
		if c.Store.LeaseTTL < time.Second {
			bad("store.lease_ttl", "is %s, want at least 1s", c.Store.LeaseTTL)
		}
		if c.Store.MovesPerSecond <= 0 {
			bad("store.moves_per_second", "must be positive")
		}
		if c.Store.Stream == "" || strings.ContainsAny(c.Store.Stream, ".*> \t") {
			bad("store.stream", "%q is not a stream name (letters, digits, - and _)", c.Store.Stream)
		}
	default:
		bad("store.kind", "is %q, want bolt or nats", c.Store.Kind)
	}
	if c.Plugins.MemoryLimitMiB < 0 {
		bad("plugins.memory_limit_mib", "cannot be negative (0 for no limit)")
	}
	if c.Plugins.Nice < 0 || c.Plugins.Nice > 19 {
		bad("plugins.nice", "is %d, want 0 to 19", c.Plugins.Nice)
	}
	if c.Console.MessagesPerAccount < 0 {
		bad("console.messages_per_account", "cannot be negative (0 keeps none)")
	}
	if c.Plugins.CPUPercent < 0 {
		bad("plugins.cpu_percent", "cannot be negative (0 for no bound)")
	}
	return errors.Join(errs...)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var yamlLine = regexp.MustCompile(`line \d+`)
