package plugins

import "fmt"

// setupLimits decides how every plugin process is bounded, and says so in
// the log: in a cgroup of its own (memory.max, cpu.max) when a delegated
// cgroup v2 directory is configured or found, else by RLIMIT_AS. A cgroup
// that is configured but unusable fails Start.
func (m *Manager) setupLimits() error {
	dir, err := findCgroup(m.cfg.Cgroup)
	if err != nil && m.cfg.Cgroup != "" {
		return fmt.Errorf("plugins: cgroup: %w", err)
	}
	nice := m.spec.Nice
	if err == nil {
		m.cgroup, m.spec.AddressSpace = dir, 0
		cpu := "not limited (the cpu controller is not enabled)"
		if cgroupEnables(dir, "cpu") && m.cfg.CPUPercent > 0 {
			cpu = fmt.Sprintf("%d%% of one CPU (cpu.max)", m.cfg.CPUPercent)
		}
		mem := "none"
		if m.cfg.MemoryLimit > 0 {
			mem = mibs(m.cfg.MemoryLimit) + " (memory.max)"
		}
		m.log.Info("plugins: limits of each plugin", "memory", mem, "cpu", cpu, "nice", nice, "cgroup", dir)
		return nil
	}
	mem := "none"
	if m.spec.AddressSpace > 0 {
		mem = mibs(m.spec.AddressSpace) + " of address space (RLIMIT_AS)"
	}
	m.log.Info("plugins: limits of each plugin", "memory", mem, "cpu", "not limited", "nice", nice,
		"cgroup", "none: "+err.Error())
	return nil
}

// newCgroup makes the cgroup of one run of the plugin name, when plugins
// get cgroups; nil otherwise.
func (m *Manager) newCgroup(name string) (*pluginCgroup, error) {
	if m.cgroup == "" {
		return nil, nil
	}
	return newPluginCgroup(m.cgroup, name, m.cfg.MemoryLimit, m.cfg.CPUPercent)
}
