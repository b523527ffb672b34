//go:build unix

package config

import (
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk/sdktest"
)

// TestLoadRefusesWhatIsNotAConfigFile names as the configuration what an
// operator may name by mistake. Each must be refused at once, by name: a
// named pipe nobody writes to used to block the start for ever.
func TestLoadRefusesWhatIsNotAConfigFile(t *testing.T) {
	t.Parallel()
	good := []byte("upstream: {base_url: sim}\naccounts: [{name: shop}]\n")
	nf := sdktest.MakeNotFiles(t, t.TempDir(), "finderbot.yaml", good, MaxFileSize)
	for name, c := range map[string]struct{ path, want string }{
		"a named pipe":        {nf.NamedPipe, "config: " + nf.NamedPipe + " is a named pipe, not a regular file"},
		"a link to /dev/zero": {nf.DevZero, "config: " + nf.DevZero + " is a device, not a regular file"},
		"1 MiB and one byte":  {nf.TooLarge, "config: " + nf.TooLarge + " is larger than 1 MiB; is it the right file?"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var err error
			sdktest.Returns(t, 10*time.Second, func() { _, err = Load(c.path) })
			if err == nil || err.Error() != c.want {
				t.Fatalf("Load: err = %v, want %q", err, c.want)
			}
		})
	}
}
