package plugins

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOwnCgroup(t *testing.T) {
	t.Parallel()
	const hybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n" +
		"30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro\n"
	const unified = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	for name, tc := range map[string]struct {
		cgroup, mounts, want, err string
	}{
		"systemd service":       {cgroup: "0::/system.slice/finderbot.service\n", mounts: unified, want: "/sys/fs/cgroup/system.slice/finderbot.service"},
		"hybrid hierarchy":      {cgroup: "4:memory:/x\n0::/\n", mounts: hybrid, want: "/sys/fs/cgroup/unified"},
		"mounted below a root":  {cgroup: "0::/ns/app\n", mounts: "41 31 0:38 /ns /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", want: "/sys/fs/cgroup/app"},
		"escaped mount point":   {cgroup: "0::/a\n", mounts: `41 31 0:38 / /mnt/c\040g rw - cgroup2 cgroup2 rw` + "\n", want: "/mnt/c g/a"},
		"outside the mount":     {cgroup: "0::/other\n", mounts: "41 31 0:38 /ns /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", err: "no cgroup v2 file system is mounted"},
		"cgroup v1 only":        {cgroup: "4:memory:/x\n", mounts: hybrid, err: "the daemon is in no cgroup v2"},
		"no cgroup2 mount":      {cgroup: "0::/\n", mounts: "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n", err: "no cgroup v2 file system is mounted"},
		"optional fields field": {cgroup: "0::/a\n", mounts: "30 25 0:26 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n", want: "/sys/fs/cgroup/a"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ownCgroup([]byte(tc.cgroup), []byte(tc.mounts))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ownCgroup = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ownCgroup = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// fakeCgroup makes a directory shaped like a cgroup v2 directory: its
// interface files, with subtree holding the controllers enabled for its
// children.
func fakeCgroup(t *testing.T, subtree string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range append(files, "cgroup.subtree_control") {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(subtree+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestUsableCgroup(t *testing.T) {
	t.Parallel()
	if err := usableCgroup(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not a cgroup v2 directory") {
		t.Errorf("a plain directory: %v", err)
	}
	if err := usableCgroup(fakeCgroup(t, "cpu pids")); err == nil ||
		!strings.Contains(err.Error(), `does not enable the memory controller for its children (cgroup.subtree_control: "cpu pids")`) {
		t.Errorf("no memory controller: %v", err)
	}
	if err := usableCgroup(fakeCgroup(t, "cpu memory")); err != nil {
		t.Errorf("a usable cgroup: %v", err)
	}
}

func TestCgroupConfigure(t *testing.T) {
	t.Parallel()
	read := func(dir, f string) string {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return string(b)
	}
	t.Run("all controllers", func(t *testing.T) {
		dir := fakeCgroup(t, "", "memory.max", "memory.swap.max", "cpu.max")
		c := &pluginCgroup{dir: dir}
		if err := c.configure(512<<20, 50); err != nil {
			t.Fatal(err)
		}
		for f, want := range map[string]string{"memory.max": "536870912", "memory.swap.max": "0", "cpu.max": "50000 100000"} {
			if got := read(dir, f); got != want {
				t.Errorf("%s = %q, want %q", f, got, want)
			}
		}
	})
	t.Run("no swap accounting, no cpu, no memory limit", func(t *testing.T) {
		dir := fakeCgroup(t, "", "memory.max")
		c := &pluginCgroup{dir: dir}
		if err := c.configure(0, 0); err != nil {
			t.Fatal(err)
		}
		if got := read(dir, "memory.max"); got != "max" {
			t.Errorf("memory.max = %q", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "cpu.max")); err == nil {
			t.Error("cpu.max was created")
		}
	})
	t.Run("no memory controller", func(t *testing.T) {
		dir := fakeCgroup(t, "")
		err := (&pluginCgroup{dir: dir}).configure(1<<30, 0)
		if err == nil || !strings.Contains(err.Error(), "cgroup: set "+dir+"/memory.max to 1073741824") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCgroupOOMKilled(t *testing.T) {
	t.Parallel()
	for events, want := range map[string]bool{
		"low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n": true,
		"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n":                   false,
		"": false,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(events), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := (&pluginCgroup{dir: dir}).oomKilled(); got != want {
			t.Errorf("oomKilled(%q) = %v", events, got)
		}
	}
}
