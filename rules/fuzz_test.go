package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCompile feeds arbitrary rule files to the loader: it must refuse or
// accept them, never panic, and every problem must carry the file name.
func FuzzCompile(f *testing.F) {
	paths, _ := filepath.Glob("testdata/errors/*.yaml")
	more, _ := filepath.Glob("../examples/rules/*.yaml")
	for _, p := range append(paths, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Compile(Options{}, Source{Name: "f.yaml", Data: data})
		if err != nil {
			if le, ok := err.(*LoadError); ok {
				for _, p := range le.Problems {
					if p.File != "f.yaml" || p.Msg == "" {
						t.Fatalf("bad problem %+v", p)
					}
				}
			}
			return
		}
		m := text("哈喽")
		_ = set.Match(nil, m, "", fuzzTime, nil)
	})
}

var fuzzTime = mustTime("2026-11-20T09:00:00+08:00")
