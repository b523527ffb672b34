package plugins

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// RunShimIfRequested makes this process a plugin's supervisor, and exits
// with the plugin's status, when a Manager started it as one; otherwise it
// returns at once. The Manager starts every plugin under a re-execution of
// the daemon's own binary, so call it first thing in main, and in the
// TestMain of every package whose tests start plugins.
//
// The supervisor (the "shim") sits between the daemon and the plugin. It
// starts the plugin in a process group of its own, under the configured
// memory limit and niceness, with standard input, output and error passed
// straight through, so the go-plugin handshake is the plugin's own. It is a
// subreaper, so everything the plugin starts stays its descendant even when
// it leaves the group. When the plugin ends, or the daemon closes the pipe
// that ties the two (which the kernel does when the daemon dies, SIGKILL
// included), it kills the group and every remaining descendant, reports how
// the plugin ended, and exits.
func RunShimIfRequested() {
	spec, ok := os.LookupEnv(shimEnv)
	if !ok {
		return
	}
	os.Exit(runShim(spec, os.Args[1:]))
}

// runShim supervises the plugin args[0] and returns the exit code.
func runShim(specText string, args []string) int {
	// The plugin's parent-death signal and its niceness are the starting
	// thread's; this one lives as long as the shim does.
	runtime.LockOSThread()
	life := os.NewFile(shimLifeFD, "life")
	report := os.NewFile(shimReportFD, "report")
	// Inherited without close-on-exec: the plugin must not get them.
	syscall.CloseOnExec(shimLifeFD)
	syscall.CloseOnExec(shimReportFD)
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintf(report, "error %s\n", msg)
		fmt.Fprintln(os.Stderr, "finderbot plugin shim:", msg)
		return 125
	}
	var spec shimSpec
	if err := json.Unmarshal([]byte(specText), &spec); err != nil || len(args) != 1 {
		return fail("bad specification %q for arguments %q", specText, args)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("become a subreaper: %v", err)
	}
	if spec.Cgroup != "" {
		if err := writeCgroupFile(spec.Cgroup+"/cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return fail("enter the plugin's cgroup: %v", err)
		}
	}
	if spec.AddressSpace > 0 {
		lim := uint64(spec.AddressSpace)
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
			return fail("set the memory limit: %v", err)
		}
	}
	if spec.Nice > 0 {
		// getpriority(2) answers 20 minus the niceness.
		if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0); err == nil && 20-prio < spec.Nice {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, spec.Nice); err != nil {
				return fail("set niceness %d: %v", spec.Nice, err)
			}
		}
	}
	env := withoutEnv(os.Environ(), shimEnv)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGINT)
	pid, err := syscall.ForkExec(args[0], args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err == syscall.EACCES {
		return fail("start %s: %v (is its file system mounted noexec? plugins run from a copy there)", args[0], err)
	}
	if err != nil {
		return fail("start %s: %v", args[0], err)
	}
	fmt.Fprintf(report, "pid %d\n", pid)
	go func() {
		// Nothing is ever written: the read ends when the daemon closes
		// its end or dies.
		io.Copy(io.Discard, life)
		syscall.Kill(-pid, syscall.SIGKILL)
	}()
	go func() {
		for s := range sigs {
			// An interrupt at the terminal is the daemon's to handle: it
			// stops its plugins itself.
			if s != syscall.SIGINT {
				syscall.Kill(-pid, s.(syscall.Signal))
			}
		}
	}()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	reapAll(pid)
	how, code := describeExit(ws)
	fmt.Fprintf(report, "exit %s\n", how)
	return code
}

// reapAll kills the process group pgid and every descendant of this
// process, and reaps them. It returns when none is left: a process whose
// parent dies is handed to this one (a subreaper), so every descendant is
// a child here before it could be lost.
func reapAll(pgid int) {
	for {
		syscall.Kill(-pgid, syscall.SIGKILL)
		for _, pid := range childrenOf(os.Getpid()) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err == syscall.ECHILD {
			return
		}
	}
}

// childrenOf lists the processes whose parent is ppid, from /proc.
func childrenOf(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold anything but ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// describeExit says how a process ended, as os/exec does, and picks the
// shim's exit code for it.
func describeExit(ws syscall.WaitStatus) (string, int) {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String(), 128 + int(ws.Signal())
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus()), ws.ExitStatus()
}

// withoutEnv returns env without the variable key.
func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
