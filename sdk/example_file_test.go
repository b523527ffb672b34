//go:build unix

package sdk_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/finderbot/finderbot/sdk"
)

// A plugin reads the files its operator names through ReadFile: a table
// that is not a regular file, or is too large, is refused at once with an
// error that says what the path is.
func ExampleReadFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	table := filepath.Join(dir, "table.yaml")
	if err := os.WriteFile(table, []byte("- match: [价格]\n  reply: 请看置顶\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	data, err := sdk.ReadFile(table, sdk.MaxFileSize)
	fmt.Println(len(data), err)

	_, err = sdk.ReadFile("/dev/zero", sdk.MaxFileSize)
	fmt.Println(err)
	// Output:
	// 40 <nil>
	// /dev/zero is a device, not a regular file
}
