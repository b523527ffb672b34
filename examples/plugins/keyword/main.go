// Command keyword is a finderbot plugin that answers messages from a keyword
// table kept in a YAML file of its own, reloaded whenever the file changes.
// See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/finderbot/finderbot/sdk"
)

func main() {
	path := os.Getenv("KEYWORD_TABLE")
	if path == "" {
		path = "keywords.yaml"
	}
	k, err := newKeyword(path)
	if err != nil {
		// Without a watcher the table cannot follow its file, but the plugin
		// still answers from what it loaded; the problem shows in its health.
		fmt.Fprintln(os.Stderr, err)
	}
	sdk.Serve(k)
}
