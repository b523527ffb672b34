//go:build !unix

package plugins

import "io/fs"

// checkPrivate accepts everything where file modes do not say who may
// write a file.
func checkPrivate(string, fs.FileInfo) error { return nil }
