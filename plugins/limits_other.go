//go:build !linux

package plugins

// logLimits warns that the configured limits are not applied here.
func (m *Manager) logLimits() {
	m.log.Warn("plugins: memory and CPU limits of plugins are applied on Linux only")
}
