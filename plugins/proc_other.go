//go:build !linux

package plugins

import "os/exec"

// setProcAttrs does nothing where the kernel cannot tie a child's life to
// its parent's; Manager.Close still stops every plugin.
func setProcAttrs(*exec.Cmd) {}
