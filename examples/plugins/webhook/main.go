// Command webhook is a finderbot plugin that posts each message it is given
// to an HTTP endpoint and relays the endpoint's answer as the reply. See
// README.md.
package main

import (
	"net/http"

	"github.com/finderbot/finderbot/sdk"
)

func main() { sdk.Serve(&webhook{client: &http.Client{}}) }
