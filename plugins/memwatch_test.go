package plugins

import "testing"

func TestMemoryWatch(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]bool{
		"fatal error: out of memory": true,
		"runtime: out of memory: cannot allocate 16777216-byte block (611876864 in use)":   true,
		"runtime/cgo: pthread_create failed: Resource temporarily unavailable":             true,
		"fatal error: failed to reserve page summary memory":                               true,
		"runtime: failed to create new OS thread (have 7 already; errno=12)":               true,
		`{"@level":"error","@message":"the backend says: out of memory, try again later"}`: false,
		"panic: probe was asked to panic":                                                  false,
	} {
		w := &memoryWatch{}
		w.Write([]byte(line))
		w.Write([]byte("\n"))
		if got := w.hit.Load(); got != want {
			t.Errorf("%q: hit = %v, want %v", line, got, want)
		}
	}
}
