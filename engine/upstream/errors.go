package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrOffline is matched by errors.Is when the upstream refused a call because
// the login instance (wId) is offline or unknown: the caller must log in
// again (/secondLogin, then /iPadLogin) rather than retry.
var ErrOffline = errors.New("upstream: instance offline")

// ErrUnauthorized is matched by errors.Is when the upstream refused the token
// itself (expired, kicked, unknown): the caller must obtain a new token.
var ErrUnauthorized = errors.New("upstream: token refused")

// ErrBodyTooLarge is matched by errors.Is when a reply body exceeded the
// client's size cap (see WithMaxBodySize). It is not retryable: the same
// request would most likely get the same reply.
var ErrBodyTooLarge = errors.New("upstream: reply body over the size cap")

// Error is a refusal by the upstream: the call reached it and it answered
// with a failure code ("1001" for wkteam, a non-zero int for the token and
// app-key APIs).
type Error struct {
	// Endpoint is the path that was called, for example "/syncFinder".
	Endpoint string
	// Code is the upstream's code as sent, in decimal for int codes.
	Code string
	// Message is the upstream's explanation, for example "失败".
	Message string
	// Offline is true when the refusal means the instance is offline; it
	// makes errors.Is(err, ErrOffline) true.
	Offline bool
	// Unauthorized is true when the refusal means the token is no longer
	// valid; it makes errors.Is(err, ErrUnauthorized) true.
	Unauthorized bool
}

// Error describes the refusal with its endpoint, code and message.
func (e *Error) Error() string {
	return fmt.Sprintf("upstream: %s: refused: code %s: %s", e.Endpoint, e.Code, e.Message)
}

// Is reports whether the refusal is ErrOffline or ErrUnauthorized.
func (e *Error) Is(target error) bool {
	return (target == ErrOffline && e.Offline) || (target == ErrUnauthorized && e.Unauthorized)
}

// StatusError is an HTTP reply whose status was not 2xx.
type StatusError struct {
	// Endpoint is the path that was called.
	Endpoint string
	// StatusCode is the HTTP status, for example 502.
	StatusCode int
	// Body is the start of the reply body (at most 512 bytes), for the log.
	Body string
}

// Error describes the status with its endpoint and the start of the body.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("upstream: %s: HTTP %d %s", e.Endpoint, e.StatusCode, http.StatusText(e.StatusCode))
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// Is reports whether the status means the token was refused (401 or 403).
func (e *StatusError) Is(target error) bool {
	return target == ErrUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// RedirectError is a 3xx reply, which is never followed: the request it
// asks to repeat elsewhere carries a password, an app secret or a token,
// and an upstream that redirects is a base_url to correct.
type RedirectError struct {
	// Endpoint is the path that was called.
	Endpoint string
	// StatusCode is the HTTP status, for example 307.
	StatusCode int
	// Location is where the reply pointed, resolved against the request's
	// URL; "" when the reply named no place.
	Location string
}

// Error names the endpoint, the status and the Location, and what to do.
func (e *RedirectError) Error() string {
	loc := e.Location
	if loc == "" {
		loc = "nowhere (no Location)"
	}
	return fmt.Sprintf("upstream: %s answered %d %s to %s; finderbot does not follow redirects, check base_url",
		e.Endpoint, e.StatusCode, http.StatusText(e.StatusCode), loc)
}

// TransportError is a failure to exchange the request and reply at all:
// dialing, TLS, a reset connection, a deadline, or a body cut short.
type TransportError struct {
	// Endpoint is the path that was called.
	Endpoint string
	// Err is the underlying error, for example a *net.OpError or
	// context.DeadlineExceeded.
	Err error
	// Written is true when the whole request had been written to the
	// connection before the failure, so the upstream may have received
	// and acted on it: a reset or a deadline while waiting for the answer,
	// or an answer cut short. It is false when the request never went out
	// whole: a failed dial, a refused connection, a ctx done before the
	// request was sent. It errs towards true: a request that sat written
	// in the connection's buffer when the connection failed counts as
	// written.
	Written bool
}

// Error describes the failure with its endpoint.
func (e *TransportError) Error() string { return fmt.Sprintf("upstream: %s: %v", e.Endpoint, e.Err) }

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// MalformedError is a reply that arrived whole but could not be understood:
// not JSON, a missing code, a data object of the wrong shape.
type MalformedError struct {
	// Endpoint is the path that was called.
	Endpoint string
	// Reason says what was wrong, for example "data.keyBuff is missing".
	Reason string
	// Err is the decoder's error, if any.
	Err error
}

// Error says which endpoint sent the reply and what was wrong with it.
func (e *MalformedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("upstream: %s: malformed reply: %s: %v", e.Endpoint, e.Reason, e.Err)
	}
	return fmt.Sprintf("upstream: %s: malformed reply: %s", e.Endpoint, e.Reason)
}

// Unwrap returns the decoder's error.
func (e *MalformedError) Unwrap() error { return e.Err }

// Retryable reports whether err is transient, so that the same call may
// succeed if made again later: transport failures and timeouts, HTTP 5xx and
// 429, and malformed replies. Refusals, 4xx statuses, redirects, oversize
// bodies and the caller's own cancellation are permanent. A nil error is not retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrBodyTooLarge) {
		return false
	}
	var (
		te *TransportError
		se *StatusError
		me *MalformedError
	)
	switch {
	case errors.As(err, &te):
		return !errors.Is(err, context.Canceled)
	case errors.As(err, &se):
		return se.StatusCode >= 500 || se.StatusCode == http.StatusTooManyRequests
	case errors.As(err, &me):
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// Rejected reports whether err proves that the upstream did not act on the
// call, so that making the same call again cannot do anything twice (send a
// message twice, for instance). It is true for:
//   - a refusal envelope (*Error), including offline and token refusals:
//     the upstream answered that it did not perform the call;
//   - an HTTP status 4xx (including 401, 403 and 429) or 503: the request
//     was refused before it was served;
//   - a *TransportError whose Written is false: the request never reached
//     the connection whole.
//
// It is false for everything else, because none of it rules out that the
// upstream acted: a nil error (the call succeeded), a *TransportError whose
// Written is true (a reset or a timeout after the request was sent), a
// *MalformedError (the upstream answered 2xx, so it may have performed the
// call; this includes a /privateSend answer without newMsgId),
// ErrBodyTooLarge (a 2xx answer too big to read), other 5xx statuses (a
// 500, 502 or 504 may come from a proxy after the upstream acted), a
// *RedirectError (nothing proves who answered it, or what they did first),
// and errors of any other kind.
//
// Rejected is about safety, Retryable about the chance of success: a 429 is
// both, a timeout after the request was written is retryable but not
// rejected, and a refusal is rejected but not retryable.
func Rejected(err error) bool {
	if err == nil || errors.Is(err, ErrBodyTooLarge) {
		return false
	}
	var (
		me *MalformedError
		e  *Error
		se *StatusError
		te *TransportError
	)
	switch {
	case errors.As(err, &me):
		// Checked first: a 2xx answer that could not be understood means the
		// call may have been performed, whatever else err wraps.
		return false
	case errors.As(err, &e):
		return true
	case errors.As(err, &se):
		return (se.StatusCode >= 400 && se.StatusCode <= 499) || se.StatusCode == http.StatusServiceUnavailable
	case errors.As(err, &te):
		return !te.Written
	}
	return false
}

// matchAny reports whether s contains any of the patterns.
func matchAny(s string, patterns []string) bool {
	for _, p := range patterns {
		if p != "" && strings.Contains(s, p) {
			return true
		}
	}
	return false
}
