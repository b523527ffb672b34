package admin

import "time"

// Status is the body of /api/status.
type Status struct {
	Started  time.Time       `json:"started"`
	Rules    int             `json:"rules"`
	Accounts []AccountStatus `json:"accounts"`
	Sessions []SessionStatus `json:"sessions,omitempty"`
	Plugins  []PluginStatus  `json:"plugins,omitempty"`
}

// AccountStatus is one account in /api/status.
type AccountStatus struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Detail      string    `json:"detail,omitempty"`
	WcID        string    `json:"wc_id,omitempty"`
	WID         string    `json:"w_id,omitempty"`
	LastSync    time.Time `json:"last_sync,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Messages    uint64    `json:"messages"`
	OutboxDepth int       `json:"outbox_depth"`
	// InDoubt counts the replies whose last attempt may have been
	// accepted, waiting for their echo.
	InDoubt int `json:"in_doubt"`
	// Skipped counts the page items that could not be processed since
	// the start (see /api/inbound-dead-letters).
	Skipped uint64 `json:"skipped"`
	// Paused counts the conversations a person took over from the phone,
	// where the bot is paused (see /api/conversations/paused).
	Paused int `json:"paused"`
}

// SessionStatus is one token or app-key session in /api/status.
type SessionStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// PluginStatus is one plugin in /api/status.
type PluginStatus struct {
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
	State    string `json:"state"`
	Problem  string `json:"problem,omitempty"`
	Restarts int    `json:"restarts"`
	// OutputDroppedLines and OutputDroppedBytes count the plugin's output
	// the daemon did not log, past plugins.output.
	OutputDroppedLines int64 `json:"output_dropped_lines"`
	OutputDroppedBytes int64 `json:"output_dropped_bytes"`
}
