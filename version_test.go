package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-01T10:26:20Z"}, {Key: "vcs.modified", Value: modified},
		}
	}
	for name, tc := range map[string]struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		"go build in a checkout": {
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201102620-50150339a8fb+dirty"},
				Settings: vcs("50150339a8fb843ca0b33830f14878d04f148a86", "true")},
			ok:   true,
			want: "v0.0.0-20261201102620-50150339a8fb+dirty (revision 50150339a8fb843ca0b33830f14878d04f148a86, committed 2026-12-01T10:26:20Z, with uncommitted changes; go1.26.8)",
		},
		"go build of a clean checkout": {
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
				Settings: vcs("50150339a8fb843ca0b33830f14878d04f148a86", "false")},
			ok:   true,
			want: "v1.2.3 (revision 50150339a8fb843ca0b33830f14878d04f148a86, committed 2026-12-01T10:26:20Z; go1.26.8)",
		},
		"go install at a release": {
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			ok:   true,
			want: "v1.2.3 (revision of tag v1.2.3; go1.26.8)",
		},
		"go install at a commit": {
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201102620-50150339a8fb"}},
			ok:   true,
			want: "v0.0.0-20261201102620-50150339a8fb (revision 50150339a8fb; go1.26.8)",
		},
		"go build -buildvcs=false": {
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			ok:   true,
			want: "(devel) (revision not recorded (built with -buildvcs=false, or not in a git checkout); go1.26.8)",
		},
		"no build info": {want: "(unknown version: the binary has no build info)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := buildVersion(tc.info, tc.ok); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestVersionCommand runs `finderbot version` and `finderbot --version` as
// a user does: both print the same one line, from this binary's build info.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	want := "finderbot " + buildVersion(debug.ReadBuildInfo()) + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code := runFinderbot(t, args...)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("finderbot %s: exit %d\nstdout: %q\nstderr: %q\nwant stdout %q", strings.Join(args, " "), code, stdout, stderr, want)
		}
	}
}
