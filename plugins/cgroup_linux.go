package plugins

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// findCgroup returns the cgroup v2 directory each plugin gets a cgroup of
// its own in: configured when set, else the daemon's own cgroup. It must
// already enable the memory controller for its children (cgroup.subtree_
// control) and be writable by the daemon; otherwise findCgroup says why
// not, and the plugins are bounded by RLIMIT_AS instead. The daemon never
// moves itself or enables controllers: a cgroup to use is delegated to it
// (systemd's Delegate=, or an operator's mkdir and chown).
func findCgroup(configured string) (string, error) {
	dir := configured
	if dir == "" {
		own, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return "", err
		}
		mounts, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return "", err
		}
		if dir, err = ownCgroup(own, mounts); err != nil {
			return "", err
		}
	}
	return dir, usableCgroup(dir)
}

// ownCgroup finds the directory of this process's cgroup v2 from the
// contents of /proc/self/cgroup and /proc/self/mountinfo.
func ownCgroup(cgroupFile, mountinfo []byte) (string, error) {
	path := ""
	for line := range strings.SplitSeq(string(cgroupFile), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	if path == "" {
		return "", errors.New("the daemon is in no cgroup v2")
	}
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// "id parent major:minor root mountpoint options... - fstype source opts"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		root, mount := unescapeMount(f[3]), unescapeMount(f[4])
		rel, err := filepath.Rel(root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		return filepath.Join(mount, rel), nil
	}
	return "", errors.New("no cgroup v2 file system is mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// usableCgroup says why dir cannot hold the plugins' cgroups, if it cannot.
func usableCgroup(dir string) error {
	ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("%s is not a cgroup v2 directory: %w", dir, err)
	}
	if !cgroupEnables(dir, "memory") {
		return fmt.Errorf("%s does not enable the memory controller for its children (cgroup.subtree_control: %q)", dir, strings.TrimSpace(string(ctl)))
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("%s is not writable by the daemon: %w", dir, err)
	}
	return nil
}

// cgroupEnables reports whether the cgroup dir enables controller for its
// children.
func cgroupEnables(dir, controller string) bool {
	ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	return err == nil && slices.Contains(strings.Fields(string(ctl)), controller)
}

// pluginCgroup is the cgroup one run of a plugin lives in.
type pluginCgroup struct{ dir string }

// newPluginCgroup makes a cgroup for a run of the plugin name under
// parent, limited as configure says.
func newPluginCgroup(parent, name string, memory int64, cpuPercent int) (*pluginCgroup, error) {
	dir, err := os.MkdirTemp(parent, "finderbot-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	c := &pluginCgroup{dir: dir}
	if !cgroupEnables(parent, "cpu") {
		cpuPercent = 0
	}
	if err := c.configure(memory, cpuPercent); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

// configure holds the cgroup to memory bytes (none when 0), with no swap,
// and to cpuPercent of one CPU unless that is 0.
func (c *pluginCgroup) configure(memory int64, cpuPercent int) error {
	limit := "max"
	if memory > 0 {
		limit = strconv.FormatInt(memory, 10)
	}
	if err := writeCgroupFile(filepath.Join(c.dir, "memory.max"), limit); err != nil {
		return err
	}
	// Without swap accounting the file is missing, and swap is then no
	// way around the limit either.
	if err := writeCgroupFile(filepath.Join(c.dir, "memory.swap.max"), "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if cpuPercent > 0 {
		return writeCgroupFile(filepath.Join(c.dir, "cpu.max"), fmt.Sprintf("%d 100000", cpuPercent*1000))
	}
	return nil
}

// writeCgroupFile writes value to an interface file of a cgroup, which the
// kernel made: a missing one means a controller is not there.
func writeCgroupFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("cgroup: set %s to %s: %w", path, value, err)
	}
	return nil
}

// oomKilled reports whether the kernel killed a process of the cgroup for
// reaching memory.max.
func (c *pluginCgroup) oomKilled() bool {
	ev, err := os.ReadFile(filepath.Join(c.dir, "memory.events"))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(ev), "\n") {
		if n, ok := strings.CutPrefix(line, "oom_kill "); ok && n != "0" {
			return true
		}
	}
	return false
}

// remove deletes the cgroup, which its processes have left by dying.
func (c *pluginCgroup) remove() {
	if c != nil {
		os.Remove(c.dir)
	}
}
