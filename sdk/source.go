package sdk

import (
	"embed"
	"io/fs"
)

// source is this module's own source. The linker keeps it only in a binary
// that calls Source, which a plugin does not.
//
//go:embed go.mod go.sum *.go sdktest/*.go internal/pluginpb/*
var source embed.FS

// Source returns the source of this module as it was built: go.mod, go.sum
// and the Go files of its packages, tests included. `finderbot plugins new`
// writes it beside a new plugin, which then builds against the very SDK the
// daemon speaks, with neither a published module nor a checkout of
// finderbot. Plugins do not need it.
func Source() fs.FS { return source }
