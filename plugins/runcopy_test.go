package plugins

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk/sdktest"
)

// TestCopyRefusesWhatIsNotAFile hands the verified copy a named pipe and a
// link to /dev/zero in place of an executable: each is refused at once, by
// name, as a refusal (restarting cannot fix it), never waited on or copied
// without end.
func TestCopyRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	exe := sdktest.MakeNotFiles(t, t.TempDir(), "greeter", nil, 0)
	for name, path := range map[string]string{"named pipe": exe.NamedPipe, "link to /dev/zero": exe.DevZero} {
		var err error
		sdktest.Returns(t, 10*time.Second, func() { _, err = copyExecutable(path, t.TempDir()) })
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), path+" is a") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
