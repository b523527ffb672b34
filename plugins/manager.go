// Package plugins is the daemon's side of out-of-process plugins: it finds
// plugin executables, checks them against pinned checksums, starts them
// through hashicorp/go-plugin (gRPC, automatic mTLS, protocol-version
// negotiation), watches their health, restarts them with exponential backoff
// after a crash, quarantines the ones that keep crashing, and calls their
// actions with a deadline.
//
// A plugin runs in a process of its own, so one that panics, hangs or leaks
// cannot take the daemon down: calls to it fail with an error the caller can
// retry (see Retryable) while the Manager brings it back.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// Config configures a Manager. Zero durations and counts take the defaults
// documented on each field.
type Config struct {
	// Dir is the directory holding plugin executables.
	Dir string
	// LockFile is the file of pinned checksums; default Dir/plugins.lock.
	// It, its directory and Dir are refused when a user other than the
	// daemon's (or root) could change them: group- or world-writable, or
	// owned by someone else.
	LockFile string
	// RunDir is the private directory (made 0700) each plugin runs from:
	// the Manager reads an executable once, hashes what it read and copies
	// those very bytes here, then starts the copy, so the file checked is
	// the file run whatever happens to Dir meanwhile. Start empties it of
	// copies a killed daemon left. Default: a temporary directory that
	// Close removes.
	RunDir string
	// MemoryLimit bounds each plugin's memory, in bytes: on Linux its
	// address space (RLIMIT_AS), set before the plugin starts. A Go plugin
	// reserves 1.6–1.7 GiB of address space before it allocates anything,
	// plus 8 MiB for each thread. A plugin that reaches the limit dies, which
	// counts as a crash whose reason says so. Default 4 GiB; negative for
	// none.
	MemoryLimit int64
	// Cgroup is a cgroup v2 directory delegated to the daemon, which enables
	// the memory (and cpu) controller for its children: each run of a
	// plugin then gets a cgroup of its own in it, with memory.max set to
	// MemoryLimit (real memory, not address space, and no swap) and cpu.max
	// to CPUPercent, instead of RLIMIT_AS. Empty: the daemon's own cgroup
	// when it qualifies, else RLIMIT_AS; the log says which.
	Cgroup string
	// CPUPercent bounds each plugin's CPU time to this share of one CPU
	// (cpu.max), where plugins get cgroups. Default 100; negative for none.
	CPUPercent int
	// Nice is the scheduling niceness plugins run at (1 to 19), so that the
	// daemon wins the CPU from a busy plugin; a daemon already nicer keeps
	// its own. Default 10; negative to leave it as the daemon's.
	Nice int
	// DevMode lets plugins run without a pin, or with a stale one, logging
	// a warning instead of refusing them. For plugin development only.
	DevMode bool
	// CallTimeout bounds every call to a plugin; a caller's earlier deadline
	// wins. Default 10s.
	CallTimeout time.Duration
	// StartTimeout bounds starting a plugin process and its handshake.
	// Default 10s.
	StartTimeout time.Duration
	// HealthInterval is how often a running plugin is health-checked; a
	// check that gets no answer within CallTimeout has the plugin restarted.
	// A crash is noticed at once without waiting for a check. Default 10s.
	HealthInterval time.Duration
	// RestartBackoff is the wait before the first restart after a crash;
	// each further crash doubles it up to MaxRestartBackoff. A plugin that
	// stays up for MaxRestartBackoff starts over at RestartBackoff.
	// Defaults 100ms and 30s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// QuarantineAfter crashes within QuarantineWindow park the plugin until
	// Restart is called for it. Defaults 5 and 5m.
	QuarantineAfter  int
	QuarantineWindow time.Duration
	// HangLimit calls in a row that hit their deadline make the Manager
	// kill and restart the plugin, which is then counted as a crash.
	// Default 3.
	HangLimit int
	// Output bounds what each plugin may have the daemon log.
	Output OutputLimits
	// OnStateChange, when set, is called each time a plugin enters another
	// State, with the problem that goes with it (why it is restarting,
	// quarantined or refused). The calls of one plugin come in order from
	// its supervisor, which waits for them: the hook must return quickly.
	OnStateChange func(plugin string, state State, problem string)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CallTimeout, 10*time.Second)
	def(&c.StartTimeout, 10*time.Second)
	def(&c.HealthInterval, 10*time.Second)
	def(&c.RestartBackoff, 100*time.Millisecond)
	def(&c.MaxRestartBackoff, 30*time.Second)
	def(&c.QuarantineWindow, 5*time.Minute)
	if c.MaxRestartBackoff < c.RestartBackoff {
		c.MaxRestartBackoff = c.RestartBackoff
	}
	if c.QuarantineAfter <= 0 {
		c.QuarantineAfter = 5
	}
	if c.HangLimit <= 0 {
		c.HangLimit = 3
	}
	c.Output = c.Output.withDefaults()
	switch {
	case c.MemoryLimit == 0:
		c.MemoryLimit = DefaultMemoryLimit
	case c.MemoryLimit < 0:
		c.MemoryLimit = 0
	}
	switch {
	case c.CPUPercent == 0:
		c.CPUPercent = 100
	case c.CPUPercent < 0:
		c.CPUPercent = 0
	}
	switch {
	case c.Nice == 0:
		c.Nice = DefaultNice
	case c.Nice < 0:
		c.Nice = 0
	case c.Nice > 19:
		c.Nice = 19
	}
	if c.LockFile == "" && c.Dir != "" {
		c.LockFile = filepath.Join(c.Dir, LockFileName)
	}
	return c
}

// Defaults of Config.MemoryLimit and Config.Nice.
const (
	DefaultMemoryLimit = 4 << 30
	DefaultNice        = 10
)

// Manager runs the plugins of one directory. Create it with New, then Start
// it; Close stops every plugin process. Call, List and Restart are safe for
// concurrent use.
type Manager struct {
	cfg  Config
	host Host
	log  *slog.Logger
	spec shimSpec // the limits every plugin process runs under

	// cgroup is the cgroup v2 directory plugins get cgroups in, or "".
	cgroup string
	// runDir is where plugins run from; ownRunDir when Start made it.
	runDir    string
	ownRunDir bool

	// plugins is set once by Start; the map is never modified afterwards.
	plugins atomic.Pointer[map[string]*instance]

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a Manager for cfg. It has no side effects: nothing is read or
// started before Start. host serves the plugins' callbacks; log receives the
// Manager's records and everything plugins log, tagged with "plugin".
func New(cfg Config, host Host, log *slog.Logger) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("plugins: no plugin directory configured")
	}
	if host == nil {
		return nil, errors.New("plugins: no host given")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Plugins run in their directory, so a relative path would not find
	// them from there.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	cfg.Dir = dir
	if cfg.LockFile != "" {
		if cfg.LockFile, err = filepath.Abs(cfg.LockFile); err != nil {
			return nil, fmt.Errorf("plugins: %w", err)
		}
	}
	cfg = cfg.withDefaults()
	spec := shimSpec{AddressSpace: cfg.MemoryLimit, Nice: cfg.Nice}
	return &Manager{cfg: cfg, host: host, log: log, spec: spec}, nil
}

// Start discovers the plugins in the directory, verifies each against its
// pin, and starts them all. It returns once every plugin has been started or
// has failed its first attempt; a plugin that fails is reported in List and
// retried in the background (or refused, for checksum problems), while the
// others serve. Start fails only when the directory or the lock file cannot
// be read, or ctx ends first; call Close even then. ctx bounds Start
// itself; the plugins run until Close.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("plugins: manager already started")
	}
	exes, problems, err := Discover(m.cfg.Dir)
	if err != nil {
		return err
	}
	for _, p := range problems {
		m.log.Warn("plugins: " + p)
	}
	if err := checkLockPaths(m.cfg.Dir, m.cfg.LockFile); err != nil {
		return err
	}
	lock, err := ReadLock(m.cfg.LockFile)
	if err != nil {
		return err
	}
	if m.cfg.RunDir == "" {
		if m.runDir, err = os.MkdirTemp("", "finderbot-plugins-run-"); err != nil {
			return fmt.Errorf("plugins: run directory: %w", err)
		}
		m.ownRunDir = true
	} else {
		if err := prepareRunDir(m.cfg.RunDir); err != nil {
			return err
		}
		m.runDir = m.cfg.RunDir
	}
	if err := m.setupLimits(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.started = true
	plugins := make(map[string]*instance, len(exes))
	for _, e := range exes {
		plugins[e.Name] = newInstance(m, e, lock[e.Name] != nil)
	}
	m.plugins.Store(&plugins)
	firsts := make([]chan struct{}, 0, len(exes))
	for _, in := range plugins {
		firsts = append(firsts, in.firstTry)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			in.supervise(runCtx)
		}()
	}
	for _, ch := range firsts {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("plugins: start: %w", ctx.Err())
		}
	}
	return nil
}

// Close stops every plugin process and waits until they have exited. It is
// safe to call more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	cancel := m.cancel
	m.cancel = nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	m.closeOutputs()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ownRunDir {
		m.ownRunDir = false
		if err := os.RemoveAll(m.runDir); err != nil {
			return fmt.Errorf("plugins: %w", err)
		}
	}
	return nil
}

// Call runs action of the named plugin and returns what it produced. The
// call gets the caller's ctx, shortened to Config.CallTimeout; the plugin
// process sees that deadline and any cancellation. req's Action field is
// ignored and req.Params is not modified: defaults of parameters the request
// lacks are filled into a copy.
//
// The answer's diagnostics are logged under the plugin's name, bounded like
// all its output (see OutputLimits).
//
// Errors are *CallError values (see ErrUnavailable and friends), except when
// ctx itself ends, which returns ctx's error.
func (m *Manager) Call(ctx context.Context, plugin, action string, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req == nil {
		req = &sdk.HandleRequest{}
	}
	in := m.lookup(plugin)
	if in == nil {
		return nil, &CallError{Plugin: plugin, Action: action, Kind: ErrNotFound, Err: fmt.Errorf("no plugin named %q in %s", plugin, m.cfg.Dir)}
	}
	resp, err := in.call(ctx, action, req)
	if err == nil {
		in.out.diagnostics(action, req.ID, resp.Diagnostics)
	}
	return resp, err
}

// WaitReady waits until the named plugin is ready to take calls. It returns
// at once with a *CallError when the plugin is unknown, refused, quarantined
// or stopped, since waiting would not change that. A plugin that has just
// crashed may still count as ready for the moment it takes to notice.
func (m *Manager) WaitReady(ctx context.Context, plugin string) error {
	in := m.lookup(plugin)
	if in == nil {
		return &CallError{Plugin: plugin, Kind: ErrNotFound, Err: fmt.Errorf("no plugin named %q in %s", plugin, m.cfg.Dir)}
	}
	return in.waitReady(ctx)
}

// Restart stops the named plugin if it runs and starts it again, verifying
// its checksum afresh. It is how an operator brings back a quarantined
// plugin, or a refused one after pinning it with `finderbot plugins lock`.
// Restart returns once the plugin has been started or has failed to.
func (m *Manager) Restart(ctx context.Context, plugin string) error {
	in := m.lookup(plugin)
	if in == nil {
		return fmt.Errorf("plugins: no plugin named %q", plugin)
	}
	return in.restart(ctx)
}

// State is where a plugin is in its life.
type State string

// States of a plugin.
const (
	StateStarting    State = "starting"
	StateReady       State = "ready"
	StateRestarting  State = "restarting"
	StateQuarantined State = "quarantined"
	StateRefused     State = "refused"
	StateStopped     State = "stopped"
)

// Info describes one plugin, for `finderbot plugins ls` and status pages.
type Info struct {
	// Name is how rules refer to the plugin: its executable's name.
	Name string
	// Path is the executable.
	Path string
	// Version and Description are what the plugin said when it last
	// started; empty if it never did.
	Version     string
	Description string
	// Actions are the actions the plugin offers.
	Actions []sdk.Action
	// State is the plugin's state; Problem says what is wrong, if anything:
	// why it is refused, quarantined or restarting, or what its own health
	// check reported while ready.
	State   State
	Problem string
	// Since is when the plugin entered State.
	Since time.Time
	// Restarts counts restarts after crashes since the Manager started.
	Restarts int
	// PID is the plugin's process id, or 0 when it is not running.
	PID int
	// Pinned reports whether the lock file has a checksum for the plugin.
	Pinned bool
	// DroppedLines and DroppedBytes count the plugin's output that the
	// daemon did not log (see OutputLimits) since the Manager started.
	DroppedLines, DroppedBytes int64
}

// List returns every plugin found in the directory, sorted by name.
func (m *Manager) List() []Info {
	p := m.plugins.Load()
	if p == nil {
		return nil
	}
	out := make([]Info, 0, len(*p))
	for _, name := range slices.Sorted(maps.Keys(*p)) {
		out = append(out, (*p)[name].info())
	}
	return out
}

// Actions returns every action of every plugin that has described itself,
// as "plugin.action", sorted: what rules may name in a plugin action.
func (m *Manager) Actions() []string {
	var out []string
	for _, inf := range m.List() {
		for _, a := range inf.Actions {
			out = append(out, inf.Name+"."+a.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (m *Manager) lookup(name string) *instance {
	if p := m.plugins.Load(); p != nil {
		return (*p)[name]
	}
	return nil
}
