//go:build unix

package main

import (
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// TestLoadTableRefusesWhatIsNotATable names as the table what an operator
// may name by mistake: each is refused at once, by name, and never read
// without end or waited on.
func TestLoadTableRefusesWhatIsNotATable(t *testing.T) {
	t.Parallel()
	nf := sdktest.MakeNotFiles(t, t.TempDir(), "keywords.yaml", []byte(table), sdk.MaxFileSize)
	for name, c := range map[string]struct{ path, want string }{
		"a named pipe":        {nf.NamedPipe, "keyword: " + nf.NamedPipe + " is a named pipe, not a regular file"},
		"a link to /dev/zero": {nf.DevZero, "keyword: " + nf.DevZero + " is a device, not a regular file"},
		"1 MiB and one byte":  {nf.TooLarge, "keyword: " + nf.TooLarge + " is larger than 1 MiB"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var err error
			sdktest.Returns(t, 10*time.Second, func() { _, err = loadTable(c.path) })
			if err == nil || err.Error() != c.want {
				t.Fatalf("loadTable: err = %v, want %q", err, c.want)
			}
		})
	}
}
