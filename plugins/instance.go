package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/finderbot/finderbot/sdk"
)

// instance is one plugin and the goroutine that keeps it running.
type instance struct {
	m    *Manager
	name string
	path string
	log  *slog.Logger
	host *scopedHost
	out  *output // the one limiter of everything the plugin logs

	// firstTry is closed when the first start attempt has ended either way.
	firstTry  chan struct{}
	firstOnce sync.Once
	// restartCh carries Restart requests to the supervisor, which answers
	// on the given channel after the next start attempt.
	restartCh chan chan error
	// kill asks the supervisor to kill the running process, giving a reason.
	kill chan string
	// done is closed when the supervisor has returned.
	done chan struct{}
	// hangs counts calls in a row that hit their deadline.
	hangs atomic.Int32

	mu       sync.RWMutex
	state    State
	problem  string
	since    time.Time
	rp       *sdk.RemotePlugin // nil unless ready
	desc     *sdk.DescribeResponse
	actions  map[string]*sdk.Action
	pinned   bool
	restarts int
	pid      int
	crashes  []time.Time   // within the quarantine window; supervisor only
	changed  chan struct{} // closed and replaced on every change of state
}

func newInstance(m *Manager, e Executable, pinned bool) *instance {
	log := m.log.With("plugin", e.Name)
	out := newOutput(log, m.cfg.Output)
	return &instance{
		m:         m,
		name:      e.Name,
		path:      e.Path,
		log:       log,
		host:      &scopedHost{name: e.Name, host: m.host, log: out.logger()},
		out:       out,
		firstTry:  make(chan struct{}),
		restartCh: make(chan chan error),
		kill:      make(chan string, 1),
		done:      make(chan struct{}),
		state:     StateStarting,
		since:     time.Now(),
		changed:   make(chan struct{}),
		pinned:    pinned,
	}
}

func (in *instance) setState(s State, problem string) {
	in.mu.Lock()
	changed := in.setStateLocked(s, problem)
	in.mu.Unlock()
	if changed {
		in.stateChanged(s, problem)
	}
}

// setStateLocked changes state with in.mu held, waking everyone waiting
// for a change, and reports whether the state changed; the caller then
// calls stateChanged once it has released in.mu.
func (in *instance) setStateLocked(s State, problem string) bool {
	changed := in.state != s
	if changed {
		in.since = time.Now()
		close(in.changed)
		in.changed = make(chan struct{})
	}
	in.state, in.problem = s, problem
	if s != StateReady {
		in.rp, in.pid = nil, 0
	}
	return changed
}

// stateChanged tells Config.OnStateChange. It runs without in.mu, so that
// the hook may read the Manager (List) without a deadlock.
func (in *instance) stateChanged(s State, problem string) {
	if f := in.m.cfg.OnStateChange; f != nil {
		f(in.name, s, problem)
	}
}

// waitReady implements Manager.WaitReady.
func (in *instance) waitReady(ctx context.Context) error {
	for {
		in.mu.RLock()
		state, problem, changed := in.state, in.problem, in.changed
		in.mu.RUnlock()
		switch state {
		case StateReady:
			return nil
		case StateStopped:
			return unavailable(in.name, "", errors.New("plugin is stopped"))
		case StateRefused:
			return unavailable(in.name, "", &stateError{kind: ErrRefused, msg: problem})
		case StateQuarantined:
			return unavailable(in.name, "", fmt.Errorf("%w: %s", ErrQuarantined, problem))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (in *instance) info() Info {
	in.mu.RLock()
	defer in.mu.RUnlock()
	inf := Info{
		Name: in.name, Path: in.path, State: in.state, Problem: in.problem, Since: in.since,
		Restarts: in.restarts, PID: in.pid, Pinned: in.pinned,
	}
	inf.DroppedLines, inf.DroppedBytes = in.out.dropped()
	if in.desc != nil {
		inf.Version, inf.Description = in.desc.Version, in.desc.Description
		inf.Actions = slices.Clone(in.desc.Actions)
	}
	return inf
}

// outcome is how a run of the plugin process ended.
type outcome struct {
	crash  string     // why the process is gone, if it crashed
	replyc chan error // a Restart request that ended the run
}

// supervise keeps the plugin running until ctx ends: start, serve, and on a
// crash restart with backoff, quarantining a plugin that keeps crashing.
func (in *instance) supervise(ctx context.Context) {
	defer close(in.done)
	defer in.firstDone()
	defer in.setState(StateStopped, "")
	cfg := in.m.cfg
	backoff := cfg.RestartBackoff
	var replyc chan error // a Restart waiting for the next start attempt
	for {
		in.setState(StateStarting, "")
		begun := time.Now()
		client, r, err := in.start(ctx)
		if replyc != nil {
			replyc <- err
			replyc = nil
		}
		var out outcome
		switch {
		case ctx.Err() != nil:
			if client != nil {
				client.Kill()
				r.end(cfg.MemoryLimit)
			}
			return
		case errors.Is(err, ErrRefused):
			in.log.Error("plugins: refusing to run plugin", "error", err)
			in.setState(StateRefused, err.Error())
			in.firstDone()
			if replyc = in.park(ctx); replyc == nil {
				return
			}
			backoff, in.crashes = cfg.RestartBackoff, nil
			continue
		case err != nil:
			out.crash = "start: " + err.Error()
		default:
			in.firstDone()
			out = in.serve(ctx, client, r)
			if ctx.Err() != nil {
				return
			}
			if time.Since(begun) >= cfg.MaxRestartBackoff {
				backoff = cfg.RestartBackoff
			}
		}
		if out.replyc != nil { // an operator's restart, not a crash
			replyc, backoff, in.crashes = out.replyc, cfg.RestartBackoff, nil
			continue
		}

		now := time.Now()
		in.crashes = append(slices.DeleteFunc(in.crashes, func(t time.Time) bool {
			return now.Sub(t) > cfg.QuarantineWindow
		}), now)
		in.mu.Lock()
		in.restarts++
		in.mu.Unlock()
		if len(in.crashes) >= cfg.QuarantineAfter {
			problem := fmt.Sprintf("%d crashes within %s, the last: %s; it stays down until restarted",
				len(in.crashes), cfg.QuarantineWindow, out.crash)
			in.log.Error("plugins: plugin quarantined", "problem", problem)
			in.setState(StateQuarantined, problem)
			in.firstDone()
			if replyc = in.park(ctx); replyc == nil {
				return
			}
			backoff, in.crashes = cfg.RestartBackoff, nil
			continue
		}
		in.log.Warn("plugins: plugin crashed; restarting", "reason", out.crash, "backoff", backoff)
		in.setState(StateRestarting, out.crash)
		in.firstDone()
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case replyc = <-in.restartCh:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, cfg.MaxRestartBackoff)
	}
}

// firstDone marks the end of the first start attempt, once the state says
// how it went.
func (in *instance) firstDone() { in.firstOnce.Do(func() { close(in.firstTry) }) }

// park waits in a refused or quarantined state for a Restart request, and
// returns it, or nil when ctx ends first.
func (in *instance) park(ctx context.Context) chan error {
	select {
	case r := <-in.restartCh:
		return r
	case <-ctx.Done():
		return nil
	}
}

// run is one start of the plugin: its private copy, its process, and what
// its standard error said about memory.
type run struct {
	copy   *privateCopy
	proc   *proc
	mem    *memoryWatch
	cgroup *pluginCgroup // nil unless plugins get cgroups
}

// end kills what is left of the run, removes the copy, and says how the
// plugin ended: its exit status, and whether it ran out of memory.
func (r *run) end(limit int64) string {
	how := r.proc.end(reportWait)
	r.copy.remove()
	oom := r.mem.hit.Load() || r.cgroup != nil && r.cgroup.oomKilled()
	r.cgroup.remove()
	if oom {
		note := "it ran out of memory"
		if limit > 0 {
			note = "it hit its memory limit (" + mibs(limit) + ")"
		}
		if how == "" {
			return note
		}
		return how + "; " + note
	}
	return how
}

// mibs writes a size in MiB.
func mibs(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// withExit adds how the process ended to a reason, when known.
func withExit(reason, how string) string {
	if how == "" {
		return reason
	}
	return reason + " (" + how + ")"
}

// start verifies the executable, starts the process from a private copy of
// the very bytes it verified, and asks the plugin to describe itself. On
// success the instance is ready.
func (in *instance) start(ctx context.Context) (*plugin.Client, *run, error) {
	cfg := in.m.cfg
	if err := checkLockPaths(cfg.Dir, cfg.LockFile); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lock, err := ReadLock(cfg.LockFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	pin, pinned := lock[in.name]
	in.mu.Lock()
	in.pinned = pinned
	in.mu.Unlock()
	if !pinned && !cfg.DevMode {
		return nil, nil, fmt.Errorf("%w: %s is not pinned in %s; check the binary, then run `finderbot plugins lock --dir %s%s`",
			ErrRefused, in.path, cfg.LockFile, cfg.Dir, lockFlag(cfg))
	}
	cp, err := copyExecutable(in.path, in.m.runDir)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case !pinned:
		in.log.Warn("plugins: dev mode: running an unpinned plugin", "path", in.path)
	case !bytes.Equal(cp.sum, pin) && cfg.DevMode:
		in.log.Warn("plugins: dev mode: running a plugin whose checksum does not match its pin", "path", in.path)
	case !bytes.Equal(cp.sum, pin):
		cp.remove()
		return nil, nil, fmt.Errorf("%w: %s changed since it was pinned in %s; if you trust the new binary, run `finderbot plugins lock --dir %s%s`",
			ErrRefused, in.path, cfg.LockFile, cfg.Dir, lockFlag(cfg))
	}

	cg, err := in.m.newCgroup(in.name)
	if err != nil {
		cp.remove()
		return nil, nil, err
	}
	spec := in.m.spec
	if cg != nil {
		spec.Cgroup = cg.dir
	}
	p, err := newProc(cp.path, cfg.Dir, spec)
	if err != nil {
		cp.remove()
		cg.remove()
		return nil, nil, err
	}
	r := &run{copy: cp, proc: p, mem: &memoryWatch{}, cgroup: cg}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(in.host),
		Cmd:              p.cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.StartTimeout,
		Logger:           in.out.hclog(),
		Stderr:           r.mem,
		SyncStdout:       in.out.stream("stdout", slog.LevelInfo),
		SyncStderr:       in.out.stream("stderr", slog.LevelWarn),
	})
	fail := func(err error) (*plugin.Client, *run, error) {
		client.Kill()
		if how := r.end(cfg.MemoryLimit); how != "" {
			err = fmt.Errorf("%w (%s)", err, how)
		}
		return nil, nil, err
	}
	cpc, err := client.Client()
	p.started()
	if err != nil {
		if strings.Contains(err.Error(), "incompatible API version") {
			// Restarting cannot fix this: the plugin needs rebuilding.
			return fail(fmt.Errorf("%w: %s: %v; rebuild it with an sdk that speaks protocol version %d",
				ErrRefused, in.path, err, sdk.ProtocolVersion))
		}
		return fail(err)
	}
	rp, err := sdk.Dispense(cpc)
	if err != nil {
		return fail(err)
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	desc, err := rp.Describe(dctx, &sdk.DescribeRequest{})
	cancel()
	if err == nil {
		err = checkDescription(desc)
	}
	if err != nil {
		return fail(err)
	}
	actions := make(map[string]*sdk.Action, len(desc.Actions))
	for i := range desc.Actions {
		actions[desc.Actions[i].Name] = &desc.Actions[i]
	}
	// The shim reports the plugin's pid before the plugin can answer.
	pid := p.waitPID(cfg.StartTimeout)
	if desc.Name != "" && desc.Name != in.name {
		in.log.Warn("plugins: plugin calls itself by another name; rules use the executable's name",
			"executable", in.name, "described", desc.Name)
	}
	in.hangs.Store(0)
	in.mu.Lock()
	in.rp, in.desc, in.actions, in.pid = rp, desc, actions, pid
	changed := in.setStateLocked(StateReady, "")
	in.mu.Unlock()
	if changed {
		in.stateChanged(StateReady, "")
	}
	in.log.Info("plugins: plugin ready", "version", desc.Version, "pid", pid, "actions", len(actions))
	return client, r, nil
}

// lockFlag is the --lock flag that names cfg's lock file to `finderbot
// plugins lock`, or nothing when it is the default one.
func lockFlag(cfg Config) string {
	if cfg.LockFile == filepath.Join(cfg.Dir, LockFileName) {
		return ""
	}
	return " --lock " + cfg.LockFile
}

// memoryWatch reads what a plugin process writes to its standard error,
// a line at a time, and notes the Go runtime's last words when it could
// not get memory or a thread under the memory limit.
type memoryWatch struct{ hit atomic.Bool }

var outOfMemory = [][]byte{
	[]byte("fatal error: out of memory"),
	[]byte("fatal error: runtime: out of memory"),
	[]byte("runtime: out of memory"),
	[]byte("fatal error: runtime: cannot allocate memory"),
	[]byte("fatal error: failed to reserve page summary memory"),
	[]byte("runtime: failed to create new OS thread"),
	[]byte("runtime/cgo: pthread_create failed"),
}

func (w *memoryWatch) Write(p []byte) (int, error) {
	if !w.hit.Load() {
		for _, s := range outOfMemory {
			if bytes.HasPrefix(p, s) {
				w.hit.Store(true)
				break
			}
		}
	}
	return len(p), nil
}

// serve watches a ready plugin until its process ends, it fails a health
// check, it is killed for hanging, an operator restarts it, or ctx ends.
func (in *instance) serve(ctx context.Context, client *plugin.Client, r *run) outcome {
	in.mu.RLock()
	rp := in.rp
	in.mu.RUnlock()
	cfg := in.m.cfg
	tick := time.NewTicker(cfg.HealthInterval)
	defer tick.Stop()
	// down takes the plugin out of service before its process is stopped, so
	// new calls fail fast instead of waiting on a dying process, and returns
	// how the process ended once it and everything it started are gone.
	down := func(state State, problem string, force bool) string {
		in.setState(state, problem)
		if force {
			r.proc.kill()
		}
		// go-plugin's Kill first asks the plugin to shut down, without a
		// deadline: a wedged process would hold it forever.
		killed := make(chan struct{})
		go func() {
			client.Kill()
			close(killed)
		}()
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-killed:
		case <-t.C:
			in.log.Warn("plugins: plugin did not stop in time; killing it", "grace", stopGrace)
			r.proc.kill()
			<-killed
		}
		return r.end(cfg.MemoryLimit)
	}
	// A kill request left over from the previous process is not about this one.
	select {
	case <-in.kill:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			down(StateStopped, "", false)
			return outcome{}
		case <-rp.Done():
			how := down(StateRestarting, "process exited", true)
			return outcome{crash: withExit("process exited", how)}
		case reason := <-in.kill:
			down(StateRestarting, reason, true)
			return outcome{crash: reason}
		case replyc := <-in.restartCh:
			down(StateStarting, "restart requested", false)
			return outcome{replyc: replyc}
		case <-tick.C:
			// As long as a call may take: a busy plugin is not a dead one.
			hctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
			err := rp.Health(hctx)
			cancel()
			var ae *sdk.ActionError
			switch {
			case errors.As(err, &ae):
				in.setProblem("health: " + ae.Message)
			case err != nil && ctx.Err() == nil:
				reason := "health check failed: " + err.Error()
				down(StateRestarting, reason, true)
				return outcome{crash: reason}
			default:
				in.setProblem("")
			}
		}
	}
}

// stopGrace is how long a plugin gets to stop when asked before it is
// killed. It is shorter than go-plugin's own 2s, after which go-plugin
// kills the shim, which could then not clean up after the plugin.
const stopGrace = 1500 * time.Millisecond

// reportWait bounds the wait for a shim to report how its plugin ended.
const reportWait = 3 * time.Second

func (in *instance) setProblem(p string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.problem != p && p != "" {
		in.log.Warn("plugins: plugin reports a problem", "problem", p)
	}
	in.problem = p
}

// restart implements Manager.Restart.
func (in *instance) restart(ctx context.Context) error {
	replyc := make(chan error, 1)
	select {
	case in.restartCh <- replyc:
	case <-in.done:
		return fmt.Errorf("plugins: %s: manager closed", in.name)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-replyc:
		if err != nil {
			return fmt.Errorf("plugins: %s: %w", in.name, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call implements Manager.Call.
func (in *instance) call(ctx context.Context, action string, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	in.mu.RLock()
	rp, actions, state, problem := in.rp, in.actions, in.state, in.problem
	in.mu.RUnlock()
	if rp == nil {
		var cause error
		switch state {
		case StateQuarantined:
			cause = fmt.Errorf("%w: %s", ErrQuarantined, problem)
		case StateRefused:
			cause = &stateError{kind: ErrRefused, msg: problem} // problem names the refusal
		default:
			cause = fmt.Errorf("plugin is %s", state)
			if problem != "" {
				cause = fmt.Errorf("plugin is %s: %s", state, problem)
			}
		}
		return nil, unavailable(in.name, action, cause)
	}
	act := actions[action]
	if act == nil {
		return nil, &CallError{Plugin: in.name, Action: action, Kind: ErrNotFound,
			Err: fmt.Errorf("no action %q; the plugin offers %s", action, actionNames(actions))}
	}
	params, err := fillParams(act, req.Params)
	if err != nil {
		return nil, &CallError{Plugin: in.name, Action: action, Kind: ErrBadRequest, Err: err}
	}
	r := *req
	r.Action, r.Params, r.Host = action, params, nil

	cctx, cancel := context.WithTimeout(ctx, in.m.cfg.CallTimeout)
	defer cancel()
	resp, err := rp.Handle(cctx, &r)
	if err == nil {
		in.hangs.Store(0)
		return resp, nil
	}
	var ae *sdk.ActionError
	switch {
	case errors.As(err, &ae):
		in.hangs.Store(0)
		return nil, &CallError{Plugin: in.name, Action: action, Kind: ErrFailed, Temporary: ae.Temporary, Err: ae}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case callerBinding(ctx, cctx) && errors.Is(err, context.DeadlineExceeded):
		// The plugin process noticed the caller's deadline a moment before
		// this process did; it is the caller's deadline all the same.
		<-ctx.Done()
		return nil, ctx.Err()
	case cctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		if n := in.hangs.Add(1); int(n) >= in.m.cfg.HangLimit {
			select {
			case in.kill <- fmt.Sprintf("%d calls in a row hit their %s deadline", n, in.m.cfg.CallTimeout):
			default:
			}
		}
		return nil, unavailable(in.name, action, fmt.Errorf("no answer within the deadline: %w", context.DeadlineExceeded))
	}
	return nil, unavailable(in.name, action, err)
}

// callerBinding reports whether the caller's deadline, rather than the
// Manager's CallTimeout, is the one cctx carries.
func callerBinding(ctx, cctx context.Context) bool {
	d, ok := ctx.Deadline()
	cd, _ := cctx.Deadline()
	return ok && !d.After(cd)
}

// fillParams checks given against the action's parameters and returns them
// with defaults filled in.
func fillParams(act *sdk.Action, given map[string]string) (map[string]string, error) {
	if len(act.Params) == 0 && len(given) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(act.Params)+len(given))
	for k, v := range given {
		if !slices.ContainsFunc(act.Params, func(p sdk.Param) bool { return p.Name == k }) {
			return nil, fmt.Errorf("unknown parameter %q; %s takes %s", k, act.Name, paramNames(act.Params))
		}
		out[k] = v
	}
	for _, p := range act.Params {
		if _, ok := out[p.Name]; ok {
			continue
		}
		if p.Required {
			return nil, fmt.Errorf("missing required parameter %q (%s)", p.Name, p.Description)
		}
		if p.Default != "" {
			out[p.Name] = p.Default
		}
	}
	return out, nil
}

func actionNames(actions map[string]*sdk.Action) string {
	if len(actions) == 0 {
		return "no actions"
	}
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func paramNames(ps []sdk.Param) string {
	if len(ps) == 0 {
		return "no parameters"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// stateError is a cause whose message already says what kind it is.
type stateError struct {
	kind error
	msg  string
}

func (e *stateError) Error() string { return e.msg }
func (e *stateError) Unwrap() error { return e.kind }
