package plugins

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// shimEnv names the environment variable that makes the daemon's binary a
// plugin's supervisor (see RunShimIfRequested); it holds a shimSpec.
const shimEnv = "FINDERBOT_PLUGIN_SHIM"

// The shim's ends of its two pipes to the daemon.
const (
	shimLifeFD   = 3 // read; ends when the daemon closes it or dies
	shimReportFD = 4 // write; "pid N", then "exit <how>" or "error <why>"
)

// shimSpec is what the daemon tells the shim, as JSON in shimEnv.
type shimSpec struct {
	// AddressSpace is the plugin's RLIMIT_AS in bytes; 0 for none.
	AddressSpace int64 `json:"as,omitempty"`
	// Nice is the niceness the plugin runs at, if above the daemon's.
	Nice int `json:"nice,omitempty"`
	// Cgroup is a cgroup v2 directory the shim enters before it starts
	// the plugin; empty for none.
	Cgroup string `json:"cgroup,omitempty"`
}

// proc is one run of a plugin process under its shim: the command go-plugin
// starts, and what the shim reports back.
type proc struct {
	cmd  *exec.Cmd
	life *os.File   // closing it has the shim end the plugin's whole tree
	ends []*os.File // the shim's ends of the pipes, closed here once it started

	lifeOnce sync.Once
	pidKnown chan struct{} // closed once pid is set, or the report ended
	done     chan struct{} // closed when the report has ended: the shim is gone
	pid      int           // the plugin's, which is also its process group's
	exit     string        // how the plugin ended, as the shim saw it
	problem  string        // why the shim could not start it
}

// newProc prepares the command that starts the executable at path, in the
// working directory dir, under a shim applying spec.
func newProc(path, dir string, spec shimSpec) (*proc, error) {
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		lifeR.Close()
		lifeW.Close()
		return nil, err
	}
	js, _ := json.Marshal(spec)
	// /proc/self/exe is the running daemon even when its file has been
	// replaced by an upgrade since it started.
	cmd := exec.Command("/proc/self/exe", path)
	cmd.Args[0] = "finderbot-plugin-shim"
	cmd.Dir = dir
	cmd.Env = []string{shimEnv + "=" + string(js)}
	cmd.ExtraFiles = []*os.File{lifeR, repW} // shimLifeFD, shimReportFD
	p := &proc{cmd: cmd, life: lifeW, ends: []*os.File{lifeR, repW},
		pidKnown: make(chan struct{}), done: make(chan struct{})}
	go p.read(repR)
	return p, nil
}

// read follows the shim's report until the shim is gone.
func (p *proc) read(r *os.File) {
	defer r.Close()
	defer close(p.done)
	known := false
	defer func() {
		if !known {
			close(p.pidKnown)
		}
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "pid":
			if pid, err := strconv.Atoi(rest); err == nil && !known && pid > 0 {
				p.pid, known = pid, true
				close(p.pidKnown)
			}
		case "exit":
			p.exit = rest
		case "error":
			p.problem = rest
		}
	}
}

// started is called once go-plugin has tried to start the command.
func (p *proc) started() {
	for _, f := range p.ends {
		f.Close()
	}
}

// waitPID returns the plugin's process id, waiting up to d for the shim to
// report it; 0 when it did not.
func (p *proc) waitPID(d time.Duration) int {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.pidKnown:
		return p.pid
	case <-t.C:
		return 0
	}
}

// kill ends the plugin's whole process tree: the shim kills it when its end
// of the life pipe closes.
func (p *proc) kill() {
	p.lifeOnce.Do(func() { p.life.Close() })
	select {
	case <-p.done:
		p.orphans()
	default:
	}
}

// orphans kills the plugin's process group when the shim is gone without
// having reported the plugin's end: something killed the shim before it
// could clean up (the plugin itself died with it, by its parent-death
// signal). A shim that did report left no group to kill, and the group's
// id may then belong to someone else.
func (p *proc) orphans() {
	if p.exit == "" && p.pid > 0 {
		syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// end kills what is left of the run and says how the plugin ended, waiting
// up to d for the shim to report it.
func (p *proc) end(d time.Duration) string {
	p.kill()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return ""
	}
	p.orphans()
	if p.problem != "" {
		return p.problem
	}
	return p.exit
}
