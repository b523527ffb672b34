package plugins

import (
	"os/exec"
	"syscall"
)

// setProcAttrs makes the kernel kill a plugin whose daemon died without
// stopping it (SIGKILL, OOM), so no plugin outlives its daemon.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
