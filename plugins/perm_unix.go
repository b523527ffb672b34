//go:build unix

package plugins

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// checkPrivate refuses a file or directory that a user other than the
// daemon's could change: one writable by its group or by everyone, or owned
// by someone other than the daemon's user and root. Such a user could put
// their own code where the daemon runs it, or unpin what the daemon checks.
func checkPrivate(path string, fi fs.FileInfo) error {
	mode := fi.Mode()
	if w := mode.Perm() & 0o022; w != 0 {
		who := "its group and everyone"
		switch w {
		case 0o020:
			who = "its group"
		case 0o002:
			who = "everyone"
		}
		return fmt.Errorf("%s is writable by %s (mode %04o %s, owner %s), so another user could change what the daemon runs; run: chmod go-w %s",
			path, who, mode.Perm(), mode, ownerOf(fi), path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if me := os.Geteuid(); int(st.Uid) != me && st.Uid != 0 {
		return fmt.Errorf("%s is owned by %s, not by the daemon's user %s or root (mode %04o %s), so another user could change what the daemon runs; run: chown %d %s",
			path, ownerOf(fi), userName(uint32(me)), mode.Perm(), mode, me, path)
	}
	return nil
}

func ownerOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return userName(st.Uid)
	}
	return "unknown"
}

// userName reads "alice (uid 1000)", or "uid 1000" for an unknown user.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("%s (uid %s)", u.Username, id)
	}
	return "uid " + id
}
