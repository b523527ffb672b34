package admin

import "time"

// Status is the body of /api/status.
type Status struct {
	Started  time.Time       `json:"started"`
	Rules    int             `json:"rules"`
	Accounts []AccountStatus `json:"accounts"`
	Sessions []SessionStatus `json:"sessions,omitempty"`
	Plugins  []PluginStatus  `json:"plugins,omitempty"`
	// Cluster is this daemon's share of the accounts, when several
	// daemons share them through NATS JetStream.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is a daemon's part in a cluster, in /api/status.
type ClusterStatus struct {
	// Node is this daemon's name.
	Node string `json:"node"`
	// LeaseTTL is how long a lease outlives its last renewal.
	LeaseTTL string `json:"lease_ttl"`
	// Held are the accounts this daemon serves.
	Held []HeldAccount `json:"held"`
}

// HeldAccount is one account a daemon holds the lease of.
type HeldAccount struct {
	Account string `json:"account"`
	// LeaseAge is the time since the last renewal began.
	LeaseAge string `json:"lease_age"`
	// Revision is the lease key's revision last written.
	Revision uint64 `json:"revision"`
	// Valid is false once the lease may have passed to another daemon.
	Valid bool      `json:"valid"`
	Since time.Time `json:"since"`
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
