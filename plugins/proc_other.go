//go:build !linux

package plugins

import (
	"os/exec"
	"time"
)

// RunShimIfRequested does nothing: plugins run under a shim on Linux only.
func RunShimIfRequested() {}

// shimSpec holds the limits a shim would apply; they are not applied here.
type shimSpec struct {
	AddressSpace int64
	Nice         int
	Cgroup       string
}

// proc is one run of a plugin process, started directly: without the Linux
// shim, its children are not tied to it.
type proc struct{ cmd *exec.Cmd }

func newProc(path, dir string, _ shimSpec) (*proc, error) {
	cmd := exec.Command(path)
	cmd.Dir = dir
	return &proc{cmd: cmd}, nil
}

func (p *proc) started() {}

func (p *proc) waitPID(time.Duration) int {
	if p.cmd.Process != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
}

func (p *proc) end(time.Duration) string {
	p.kill()
	return ""
}
