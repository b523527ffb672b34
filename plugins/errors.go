package plugins

import (
	"errors"
	"fmt"
)

// Kinds of failed calls. Every error Call returns, except the caller's own
// context ending, is a *CallError matching exactly one of ErrNotFound,
// ErrBadRequest, ErrUnavailable or ErrFailed with errors.Is, so a caller
// knows what to do without reading messages:
//
//   - ErrNotFound, ErrBadRequest: permanent; fix the config. Retrying cannot
//     help.
//   - ErrUnavailable: the plugin could not answer — not started yet, crashed
//     (even in the middle of this call), restarting, hung past the deadline,
//     refused or quarantined. Retry later; dead-letter after repeated failure.
//   - ErrFailed: the plugin answered that it could not do the action. Retry
//     only when Retryable says so (the plugin marked it sdk.RetryLater).
var (
	ErrNotFound    = errors.New("not found")
	ErrBadRequest  = errors.New("bad request")
	ErrUnavailable = errors.New("unavailable")
	ErrFailed      = errors.New("failed")
)

// Finer causes of ErrUnavailable; a *CallError carrying one of these also
// matches ErrUnavailable.
var (
	// ErrQuarantined: the plugin crashed too often and is parked until an
	// operator restarts it.
	ErrQuarantined = errors.New("quarantined after repeated crashes")
	// ErrRefused: the plugin's executable is not pinned, or no longer
	// matches its pin.
	ErrRefused = errors.New("refused")
)

// CallError describes a call that did not produce a response.
type CallError struct {
	// Plugin and Action name what was called.
	Plugin, Action string
	// Kind is ErrNotFound, ErrBadRequest, ErrUnavailable or ErrFailed.
	Kind error
	// Temporary is set for ErrFailed when the plugin marked its error with
	// sdk.RetryLater.
	Temporary bool
	// Err is the cause.
	Err error
}

// Error reads "plugins: <plugin>.<action>: <kind>: <cause>".
func (e *CallError) Error() string {
	target := e.Plugin
	if e.Action != "" {
		target += "." + e.Action
	}
	return fmt.Sprintf("plugins: %s: %v: %v", target, e.Kind, e.Err)
}

// Unwrap lets errors.Is and errors.As see both the kind and the cause.
func (e *CallError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Retryable reports whether a call that failed with err is worth retrying
// later: the plugin was unavailable, or it answered with an error it marked
// as temporary.
func Retryable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var ce *CallError
	return errors.As(err, &ce) && ce.Kind == ErrFailed && ce.Temporary
}

// unavailable makes the error of a call to a plugin that cannot answer.
func unavailable(plugin, action string, cause error) *CallError {
	return &CallError{Plugin: plugin, Action: action, Kind: ErrUnavailable, Err: cause}
}
