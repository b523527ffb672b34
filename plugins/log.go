package plugins

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"

	"github.com/finderbot/finderbot/sdk"
)

// OutputLimits bound what one plugin may have the daemon log. Everything a
// plugin says passes one limiter: what it writes to its standard output and
// standard error, go-plugin's relay of its log records, its Host.Log calls
// and the diagnostics it returns. A plugin that floods therefore cannot fill
// the daemon's log or its disk; what is dropped is counted, summed up in one
// record per ReportInterval, and shown in Info. Zero fields take the defaults
// documented on each.
type OutputLimits struct {
	// LineBytes bounds one record: message and attributes together. A
	// longer line is cut, never inside a UTF-8 character, and the rest is
	// counted as dropped bytes. Default 4096.
	LineBytes int
	// LinesPerSecond and Burst are a token bucket of records: past it,
	// records are dropped and counted. Defaults 50 and 200.
	LinesPerSecond int
	Burst          int
	// ReportInterval is how often dropped output is summed up in a record
	// of the daemon's own. Default 10s.
	ReportInterval time.Duration
}

func (l OutputLimits) withDefaults() OutputLimits {
	if l.LineBytes <= 0 {
		l.LineBytes = 4096
	}
	if l.LinesPerSecond <= 0 {
		l.LinesPerSecond = 50
	}
	if l.Burst <= 0 {
		l.Burst = 200
	}
	if l.ReportInterval <= 0 {
		l.ReportInterval = 10 * time.Second
	}
	return l
}

// maxAttrs bounds the attributes kept of one record, so that a record of
// many tiny attributes costs no more than one of a few long ones.
const maxAttrs = 32

// output is the one limiter of a plugin's output. Every path that logs on
// the plugin's behalf holds a logger from output.logger, or calls drop for
// bytes it never turns into a record.
type output struct {
	next   slog.Handler // the daemon's handler, tagged with the plugin's name
	limits OutputLimits
	bucket *rate.Limiter

	mu      sync.Mutex
	pending struct{ lines, bytes int64 } // dropped since the last report
	since   time.Time                    // when the first of pending was dropped
	timer   *time.Timer                  // the next report, while pending
	closed  bool

	lines, bytes atomic.Int64 // dropped since the limiter was made
}

func newOutput(l *slog.Logger, limits OutputLimits) *output {
	limits = limits.withDefaults()
	return &output{
		next:   l.Handler(),
		limits: limits,
		bucket: rate.NewLimiter(rate.Limit(limits.LinesPerSecond), limits.Burst),
	}
}

// logger returns a logger whose records pass the limiter.
func (o *output) logger() *slog.Logger { return slog.New(&limitHandler{o: o, next: o.next}) }

// dropped returns what was dropped since the limiter was made.
func (o *output) dropped() (lines, bytes int64) { return o.lines.Load(), o.bytes.Load() }

// drop counts output that was not logged and makes sure a report follows.
func (o *output) drop(lines, bytes int64) {
	if lines == 0 && bytes == 0 {
		return
	}
	o.lines.Add(lines)
	o.bytes.Add(bytes)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending.lines == 0 && o.pending.bytes == 0 {
		o.since = time.Now()
		if !o.closed {
			o.timer = time.AfterFunc(o.limits.ReportInterval, o.report)
		}
	}
	o.pending.lines += lines
	o.pending.bytes += bytes
}

// report logs what was dropped since the last report, as one record that
// does not itself pass the limiter.
func (o *output) report() {
	o.mu.Lock()
	p, since := o.pending, o.since
	o.pending.lines, o.pending.bytes, o.timer = 0, 0, nil
	o.mu.Unlock()
	if p.lines == 0 && p.bytes == 0 {
		return
	}
	window := time.Since(since).Round(time.Millisecond)
	if window > o.limits.ReportInterval {
		window = o.limits.ReportInterval
	}
	msg := fmt.Sprintf("plugins: plugin output dropped: %d lines, %d bytes in the last %s", p.lines, p.bytes, window)
	slog.New(o.next).LogAttrs(context.Background(), slog.LevelWarn, msg,
		slog.Int64("lines", p.lines), slog.Int64("bytes", p.bytes))
}

// close reports what is pending at once and schedules no more reports.
func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	t := o.timer
	o.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	o.report()
}

// diagnosticBudget is how many times LineBytes the diagnostics of one
// answer may log; the rest are dropped and counted.
const diagnosticBudget = 4

// diagnostics logs the diagnostics of an answer to action, each as one
// record bounded like any other line, and at most diagnosticBudget lines'
// worth per answer.
func (o *output) diagnostics(action, id string, ds []sdk.Diagnostic) {
	l := o.logger()
	budget := diagnosticBudget * o.limits.LineBytes
	for _, d := range ds {
		size := len(d.Summary) + len(d.Detail)
		if budget <= 0 {
			o.drop(1, int64(size))
			continue
		}
		budget -= min(size, o.limits.LineBytes)
		level := slog.LevelWarn
		switch d.Severity {
		case sdk.SeverityInfo:
			level = slog.LevelInfo // a note, such as a plugin's usage figures
		case sdk.SeverityError:
			level = slog.LevelError
		}
		l.LogAttrs(context.Background(), level, "plugin diagnostic",
			slog.String("action", action), slog.String("id", id), slog.String("severity", d.Severity.String()),
			slog.String("summary", d.Summary), slog.String("detail", d.Detail))
	}
}

// stream returns the writer for one of the plugin's standard streams, whose
// lines are logged at level.
func (o *output) stream(name string, level slog.Level) *lineWriter {
	l := o.logger().With("stream", name)
	return &lineWriter{out: o, log: l, cutLog: l.With("truncated", true), level: level}
}

// limitHandler is the slog.Handler of output.logger: it cuts each record to
// LineBytes and lets through only what the token bucket allows.
type limitHandler struct {
	o    *output
	next slog.Handler
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	b, size, cut := h.o.bound(r)
	if !h.o.bucket.Allow() {
		h.o.drop(1, size)
		return nil
	}
	h.o.drop(0, cut)
	return h.next.Handle(ctx, b)
}

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{o: h.o, next: h.next.WithAttrs(as)}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{o: h.o, next: h.next.WithGroup(name)}
}

// bound returns r cut to LineBytes, with its size before and the bytes cut.
// Strings are cut at a character boundary; other values are kept whole or
// left out. A record that lost anything says so with truncated=true.
func (o *output) bound(r slog.Record) (out slog.Record, size, cut int64) {
	budget := o.limits.LineBytes
	msg := r.Message[:runeCut(r.Message, budget)]
	budget -= len(msg)
	size = int64(len(r.Message))
	kept := int64(len(msg))
	out = slog.NewRecord(r.Time, r.Level, msg, r.PC)
	n := 0
	r.Attrs(func(a slog.Attr) bool {
		a.Value = a.Value.Resolve()
		s := a.Value.String()
		size += int64(len(a.Key) + len(s))
		if n >= maxAttrs || len(a.Key) >= budget {
			return true
		}
		switch a.Value.Kind() {
		case slog.KindString, slog.KindAny, slog.KindGroup:
			s = s[:runeCut(s, budget-len(a.Key))]
			a.Value = slog.StringValue(s)
		default: // numbers, times and the like: short, and kept whole or not at all
			if len(a.Key)+len(s) > budget {
				return true
			}
		}
		out.AddAttrs(a)
		n++
		budget -= len(a.Key) + len(s)
		kept += int64(len(a.Key) + len(s))
		return true
	})
	if cut = size - kept; cut > 0 {
		out.AddAttrs(slog.Bool("truncated", true))
	}
	return out, size, cut
}

// runeCut returns where to cut s to keep at most n bytes without splitting
// a UTF-8 character.
func runeCut[S ~string | ~[]byte](s S, n int) int {
	if len(s) <= n {
		return len(s)
	}
	n = max(n, 0)
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return n
}

// lineWriter logs each line written to it as one record. It receives what a
// plugin writes to its standard output and standard error. It holds at most
// LineBytes of a line: a longer one is logged as soon as it reaches the
// bound, and the rest of it, up to its newline, is counted as dropped.
type lineWriter struct {
	out    *output
	log    *slog.Logger
	cutLog *slog.Logger // log, marking the line as cut
	level  slog.Level

	mu   sync.Mutex
	line []byte
	cut  bool // the current line was cut; the rest of it is dropped
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		if !w.cut {
			w.emit(w.log, w.line)
		}
		w.line, w.cut = w.line[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// add appends part of the current line, cutting the line at LineBytes.
func (w *lineWriter) add(seg []byte) {
	if w.cut {
		w.out.drop(0, int64(len(seg)))
		return
	}
	limit := w.out.limits.LineBytes
	if len(w.line)+len(seg) <= limit {
		w.line = append(w.line, seg...)
		return
	}
	// One byte past the bound tells whether the cut splits a character.
	total := len(w.line) + len(seg)
	w.line = append(w.line, seg[:limit-len(w.line)+1]...)
	w.line = w.line[:runeCut(w.line, limit)]
	w.out.drop(0, int64(total-len(w.line)))
	w.emit(w.cutLog, w.line)
	w.cut = true
}

func (w *lineWriter) emit(l *slog.Logger, line []byte) {
	s := strings.TrimRight(string(line), "\r")
	if s == "" {
		return
	}
	l.Log(context.Background(), w.level, s)
}

// hclogAdapter lets go-plugin, which logs through hclog, write to the
// daemon's slog logger. Everything go-plugin says about a plugin, including
// what the plugin process writes to its standard error outside go-plugin's
// relay (its hclog records, a panic), arrives here, so it goes through the
// plugin's output limiter.
type hclogAdapter struct {
	out  *output
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// hclog returns the logger go-plugin gets for the plugin.
func (o *output) hclog() hclog.Logger { return &hclogAdapter{out: o, l: o.logger()} }

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lv := slogLevel(level)
	ctx := context.Background()
	if !a.l.Enabled(ctx, lv) {
		return
	}
	all := make([]any, 0, len(a.args)+len(args)+2)
	if a.name != "" {
		all = append(all, "component", a.name)
	}
	all = append(all, a.args...)
	all = append(all, args...)
	a.l.Log(ctx, lv, msg, all...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	return a.l.Enabled(context.Background(), slogLevel(level))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	n := *a
	n.args = append(append([]any(nil), a.args...), args...)
	return &n
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	n := *a
	if n.name != "" {
		name = n.name + "." + name
	}
	n.name = name
	return &n
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	n := *a
	n.name = name
	return &n
}

// SetLevel does nothing: the slog handler decides what is logged.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelInfo)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return a.out.stream("standard", slog.LevelInfo)
}

// closeOutputs reports what each plugin dropped and has not been reported.
func (m *Manager) closeOutputs() {
	if p := m.plugins.Load(); p != nil {
		for _, in := range *p {
			in.out.close()
		}
	}
}
