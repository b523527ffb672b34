// Command counter is a finderbot plugin that counts the messages each user
// sends an account, keeping the counts in the daemon's key-value store, and
// answers with the count. See README.md.
package main

import "github.com/finderbot/finderbot/sdk"

func main() { sdk.Serve(&counter{}) }
