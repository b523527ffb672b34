package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/finderbot/finderbot/sdk"
)

// jsonLog collects JSON log records for assertions.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (j *jsonLog) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.buf.Write(p)
}

func (j *jsonLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(j, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "p")
}

// records returns the records logged so far whose message starts with
// prefix.
func (j *jsonLog) records(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(j.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(rec["msg"].(string), prefix) {
			out = append(out, rec)
		}
	}
	return out
}

func TestOutputRateIsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := &jsonLog{}
		o := newOutput(logs.logger(), OutputLimits{LinesPerSecond: 50, Burst: 200, ReportInterval: 10 * time.Second})
		l := o.logger()
		for range 1000 {
			l.Info("line")
		}
		if n := len(logs.records(t, "line")); n != 200 {
			t.Fatalf("a burst of 1000 lines logged %d, want the burst of 200", n)
		}
		time.Sleep(time.Second)
		for range 100 {
			l.Info("line")
		}
		if n := len(logs.records(t, "line")); n != 250 {
			t.Fatalf("a second later, %d lines in all, want 250 (50 a second)", n)
		}
		if lines, size := o.dropped(); lines != 850 || size != 850*4 {
			t.Errorf("dropped = %d lines, %d bytes; want 850 lines, %d bytes", lines, size, 850*4)
		}
		// One report, 10s after the first drop, for both seconds' drops.
		time.Sleep(9 * time.Second)
		synctest.Wait()
		reports := logs.records(t, "plugins: plugin output dropped")
		if len(reports) != 1 || reports[0]["msg"] != "plugins: plugin output dropped: 850 lines, 3400 bytes in the last 10s" ||
			reports[0]["lines"] != 850.0 || reports[0]["plugin"] != "p" || reports[0]["level"] != "WARN" {
			t.Fatalf("reports = %v", reports)
		}
		// Nothing dropped, nothing reported.
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(logs.records(t, "plugins: plugin output dropped")); n != 1 {
			t.Errorf("%d reports after a quiet minute, want still 1", n)
		}
		// The next flood gets a report of its own; close reports at once.
		for range 300 {
			l.Info("line")
		}
		o.close()
		reports = logs.records(t, "plugins: plugin output dropped")
		if len(reports) != 2 || reports[1]["lines"] != 100.0 {
			t.Errorf("reports after close = %v", reports)
		}
	})
}

func TestLineWriterCutsLongLines(t *testing.T) {
	t.Parallel()
	const limit = 16
	for name, tc := range map[string]struct {
		writes  []string
		want    []string // the lines logged
		cut     []bool   // whether each was marked truncated
		dropped int64
	}{
		"short lines": {writes: []string{"a\nb", "c\r\n\n"}, want: []string{"a", "bc"}, cut: []bool{false, false}},
		"a line past the bound": {writes: []string{strings.Repeat("a", limit+5) + "\nok\n"},
			want: []string{strings.Repeat("a", limit), "ok"}, cut: []bool{true, false}, dropped: 5},
		"a character across the bound is not split": {writes: []string{strings.Repeat("a", limit-1) + "你好\n"},
			want: []string{strings.Repeat("a", limit-1)}, cut: []bool{true}, dropped: 6},
		"a character across writes": {writes: []string{strings.Repeat("a", limit-2), "你", "好\n"},
			want: []string{strings.Repeat("a", limit-2)}, cut: []bool{true}, dropped: 6},
		"a megabyte without a newline": {writes: append([]string{"b"}, strings.Split(strings.Repeat(strings.Repeat("c", 1000)+",", 1000), ",")...),
			want: []string{"b" + strings.Repeat("c", limit-1)}, cut: []bool{true}, dropped: 1000*1000 + 1 - limit},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &jsonLog{}
			o := newOutput(logs.logger(), OutputLimits{LineBytes: limit})
			w := o.stream("stdout", slog.LevelInfo)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			recs := logs.records(t, "")
			if len(recs) != len(tc.want) {
				t.Fatalf("logged %v, want %q", recs, tc.want)
			}
			for i, r := range recs {
				msg := r["msg"].(string)
				if msg != tc.want[i] || r["stream"] != "stdout" || (r["truncated"] == true) != tc.cut[i] {
					t.Errorf("record %d = %v, want %q truncated=%v", i, r, tc.want[i], tc.cut[i])
				}
				if !utf8.ValidString(msg) {
					t.Errorf("record %d split a character: %q", i, msg)
				}
			}
			if lines, size := o.dropped(); lines != 0 || size != tc.dropped {
				t.Errorf("dropped = %d lines, %d bytes; want 0, %d", lines, size, tc.dropped)
			}
			if cap(w.line) > 2*limit {
				t.Errorf("the writer holds %d bytes for a line of at most %d", cap(w.line), limit)
			}
		})
	}
}

func TestRecordsAreBounded(t *testing.T) {
	t.Parallel()
	logs := &jsonLog{}
	const limit = 4096
	o := newOutput(logs.logger(), OutputLimits{LineBytes: limit})
	huge := strings.Repeat("名", sdk.MaxResponseText/3+1) // 64 KiB and a bit
	attrs := []slog.Attr{slog.Int("n", 7), slog.String("big", huge), slog.String(huge, "key too long")}
	for range 1000 {
		attrs = append(attrs, slog.String("k", "v"))
	}
	o.logger().LogAttrs(context.Background(), slog.LevelInfo, "short", attrs...)
	o.logger().LogAttrs(context.Background(), slog.LevelInfo, huge)
	o.logger().LogAttrs(context.Background(), slog.LevelInfo, "many", attrs[3:]...)
	recs := logs.records(t, "")
	if len(recs) != 3 {
		t.Fatalf("logged %d records, want 3", len(recs))
	}
	for i, r := range recs {
		size := 0
		for k, v := range r {
			if k == "time" || k == "level" || k == "plugin" || k == "truncated" {
				continue
			}
			s, _ := v.(string)
			if k != "msg" {
				size += len(k)
			}
			size += len(s)
			if !utf8.ValidString(s) {
				t.Errorf("record %d: %s split a character", i, k)
			}
		}
		if size > limit || r["truncated"] != true {
			t.Errorf("record %d holds %d bytes (limit %d), truncated=%v", i, size, limit, r["truncated"])
		}
	}
	if recs[0]["n"] != 7.0 || len(recs[0]["big"].(string)) < limit-100 {
		t.Errorf("the first record lost what fits: n=%v, big is %d bytes", recs[0]["n"], len(recs[0]["big"].(string)))
	}
	if len(recs[2])-5 > maxAttrs { // time, level, msg, plugin, truncated
		t.Errorf("a record of 1000 attributes kept %d", len(recs[2])-5)
	}
	if lines, size := o.dropped(); lines != 0 || size < 2*int64(len(huge))-2*limit {
		t.Errorf("dropped = %d lines, %d bytes", lines, size)
	}
}

func TestDiagnosticsOfOneAnswerAreBounded(t *testing.T) {
	t.Parallel()
	logs := &jsonLog{}
	const limit = 4096
	o := newOutput(logs.logger(), OutputLimits{LineBytes: limit})
	ds := make([]sdk.Diagnostic, sdk.MaxDiagnostics)
	for i := range ds {
		ds[i] = sdk.Diagnostic{Severity: sdk.SeverityWarning, Summary: strings.Repeat("s", sdk.MaxResponseText+1), Detail: "d"}
	}
	o.diagnostics("act", "shop/1", ds)
	recs := logs.records(t, "plugin diagnostic")
	if len(recs) != diagnosticBudget {
		t.Fatalf("one answer logged %d diagnostics, want %d", len(recs), diagnosticBudget)
	}
	for _, r := range recs {
		if n := len(r["summary"].(string)); n > limit || r["action"] != "act" || r["id"] != "shop/1" || r["truncated"] != true {
			t.Errorf("diagnostic record = %d-byte summary, %v", n, r)
		}
	}
	if lines, _ := o.dropped(); lines != sdk.MaxDiagnostics-diagnosticBudget {
		t.Errorf("dropped %d diagnostics, want %d", lines, sdk.MaxDiagnostics-diagnosticBudget)
	}
}
