package redact

import (
	"errors"
	"net/http"
)

// Filter returns a handler that serves h with the secrets of s hidden in
// every response: the header values and the body. The body is filtered as
// it is written, holding back only the few bytes that could begin a secret
// the next write completes, so that a secret cut across two writes is
// hidden and a long response is not held in memory. Flush sends what is
// held back: a handler that streams (Server-Sent Events) writes each event
// whole before flushing it. A response that must go out byte for byte, such
// as a copy of the store, opts out with Unfiltered.
//
// The request's Accept-Encoding is dropped, so that handlers answer in
// plain text the filter can read, and a Content-Length set by the handler is
// dropped, since redaction changes the length.
func Filter(s *Set, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept-Encoding")
		fw := &writer{ResponseWriter: w, set: s}
		defer fw.finish()
		h.ServeHTTP(fw, r)
	})
}

// Unfiltered makes the rest of the response w go out as the handler writes
// it, unfiltered, and returns w. A handler that streams bytes which must
// arrive exactly (a copy of the store) calls it before writing; elsewhere it
// does nothing.
func Unfiltered(w http.ResponseWriter) http.ResponseWriter {
	for u := w; u != nil; {
		if fw, ok := u.(*writer); ok {
			fw.flushPending()
			fw.raw = true
			break
		}
		uw, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		u = uw.Unwrap()
	}
	return w
}

// writer is the ResponseWriter of Filter.
type writer struct {
	http.ResponseWriter
	set         *Set
	raw         bool
	wroteHeader bool
	pending     []byte // written by the handler, not yet decided
	prev        byte   // the last byte consumed before pending
	out         []byte // reused output buffer
	err         error  // the first write error of the client connection
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteHeader redacts the header values and drops Content-Length.
func (w *writer) WriteHeader(code int) {
	if w.wroteHeader {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if code >= 200 {
		w.wroteHeader = true
	}
	if !w.raw {
		m := w.set.matcher()
		h := w.ResponseWriter.Header()
		h.Del("Content-Length")
		for k, vs := range h {
			for i, v := range vs {
				vs[i] = m.string(v)
			}
			h[k] = vs
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write filters p; it reports p consumed unless the connection failed.
func (w *writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.raw {
		return w.ResponseWriter.Write(p)
	}
	if w.err != nil {
		return 0, w.err
	}
	w.pending = append(w.pending, p...)
	w.emit(false)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// emit writes out what is decided of pending: all of it when final.
func (w *writer) emit(final bool) {
	if len(w.pending) == 0 || w.err != nil {
		return
	}
	out, n := w.set.matcher().redact(w.out[:0], w.pending, w.prev, final)
	if n > 0 {
		w.prev = w.pending[n-1]
		w.pending = w.pending[:copy(w.pending, w.pending[n:])]
	}
	w.out = out[:0]
	if len(out) > 0 {
		if _, err := w.ResponseWriter.Write(out); err != nil {
			w.err = err
		}
	}
}

// flushPending writes out everything held back.
func (w *writer) flushPending() {
	if !w.wroteHeader && len(w.pending) > 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.emit(true)
}

// Flush sends what is held back, then flushes the connection.
func (w *writer) Flush() { _ = w.FlushError() }

// FlushError is Flush, reporting the connection's error.
func (w *writer) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flushPending()
	if w.err != nil {
		return w.err
	}
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// finish writes out the rest when the handler returns.
func (w *writer) finish() { w.flushPending() }
