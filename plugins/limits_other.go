//go:build !linux

package plugins

// setupLimits warns that the configured limits are not applied here.
func (m *Manager) setupLimits() error {
	m.log.Warn("plugins: memory and CPU limits of plugins are applied on Linux only")
	return nil
}

// pluginCgroup stands for the Linux cgroup of a run; there is none here.
type pluginCgroup struct{ dir string }

func (m *Manager) newCgroup(string) (*pluginCgroup, error) { return nil, nil }

func (c *pluginCgroup) oomKilled() bool { return false }

func (c *pluginCgroup) remove() {}
