package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
)

// pseudoRevision matches the revision at the end of a pseudo-version
// (v0.0.0-20261201102100-b1b2db5a1234): a `go install pkg@commit` build
// records no vcs.* settings, and the pseudo-version is then all there is.
var pseudoRevision = regexp.MustCompile(`-\d{14}-([0-9a-f]{12})(\+dirty)?$`)

// buildVersion describes the build as `finderbot version` and --version
// print it: the module version and the VCS revision from the build info,
// and the Go version. A build from a checkout records the revision (unless
// built with -buildvcs=false); one installed from the module proxy records
// the version it was installed at, whose tag names the revision.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "(unknown version: the binary has no build info)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var details []string
	switch m := pseudoRevision.FindStringSubmatch(version); {
	case rev != "":
		details = append(details, "revision "+rev)
	case m != nil:
		details = append(details, "revision "+m[1])
	case strings.HasPrefix(version, "v"):
		details = append(details, "revision of tag "+version)
	default:
		details = append(details, "revision not recorded (built with -buildvcs=false, or not in a git checkout)")
	}
	if when != "" {
		details = append(details, "committed "+when)
	}
	if modified {
		details = append(details, "with uncommitted changes")
	}
	return fmt.Sprintf("%s (%s; %s)", version, strings.Join(details, ", "), info.GoVersion)
}
