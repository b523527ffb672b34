package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// The daemon's side: start the plugins of a directory, call an action, and
// decide from the error whether to retry.
func ExampleManager() {
	cfg := plugins.Config{
		Dir:         "/etc/finderbot/plugins", // executables + plugins.lock
		CallTimeout: 5 * time.Second,
	}
	// The daemon implements plugins.Host over its outbox and store; newMemHost
	// is the tests' in-memory one.
	m, err := plugins.New(cfg, newMemHost(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close() // stops every plugin process
	if err := m.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}

	resp, err := m.Call(context.Background(), "keyword", "reply", &sdk.HandleRequest{
		Params:  map[string]string{"fallback": "稍后回复您"},
		Message: sdktest.Text("价格多少"),
		Account: "shop",
	})
	switch {
	case err == nil:
		for _, r := range resp.Replies {
			fmt.Println("reply:", r.Text) // into the outbox
		}
	case plugins.Retryable(err):
		fmt.Println("keep the action, retry later:", err)
	case errors.Is(err, plugins.ErrNotFound), errors.Is(err, plugins.ErrBadRequest):
		fmt.Println("configuration problem, dead-letter now:", err)
	default: // plugins.ErrFailed
		fmt.Println("the plugin could not do it:", err)
	}
}
