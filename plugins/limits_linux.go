package plugins

// logLimits says what bounds every plugin process, and how.
func (m *Manager) logLimits() {
	mem := "none"
	if m.spec.AddressSpace > 0 {
		mem = mibs(m.spec.AddressSpace) + " of address space (RLIMIT_AS)"
	}
	m.log.Info("plugins: limits of each plugin", "memory", mem, "nice", m.spec.Nice)
}
