package plugins

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"unicode"

	"github.com/finderbot/finderbot/sdk"
)

// scaffoldFiles are the templates of a new plugin's own files, with [[ ]]
// as delimiters: Go composite literals are full of {{.
//
//go:embed scaffold/*.tmpl
var scaffoldFiles embed.FS

// SDKModule is the module path of the SDK, as a plugin requires it.
const SDKModule = "github.com/finderbot/finderbot/sdk"

// ScaffoldSDKDir is where, in a new plugin's module, Scaffold writes the
// SDK's source, which the module's go.mod replaces the SDK with. A folder
// holding a go.mod of its own is a module apart: the plugin's `go test ./...`
// and `go vet ./...` leave it out.
const ScaffoldSDKDir = "internal/finderbot-sdk"

// noVersion is the version a module required only through a replace
// directive is given: no such version exists anywhere, so nothing but the
// replacement can provide it.
const noVersion = "v0.0.0-00010101000000-000000000000"

// Scaffold writes a new plugin module named name into dir: main.go (a
// plugin with one action, greet), main_test.go (its test through sdktest),
// README.md (the sections of every example plugin's), go.mod, go.sum, and
// the SDK's source in ScaffoldSDKDir, so that `go test ./...` and `go build`
// work there at once with nothing but the Go module proxy. version is the
// finderbot version the SDK comes from, for the README. dir must not exist
// or be empty; name must be a valid plugin name. It returns the paths it
// wrote, relative to dir.
func Scaffold(dir, name, version string) ([]string, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("plugins: new: %q is not a valid plugin name: rules call its actions as \"plugin: <name>.<action>\", so use letters, digits, '-' and '_' only, starting with a letter or digit", name)
	}
	created, err := makeEmptyDir(dir)
	if err != nil {
		return nil, err
	}
	written, err := writeScaffold(dir, name, version)
	if err != nil && created {
		os.RemoveAll(dir) // a half-written plugin would only be in the way of the next try
	}
	return written, err
}

// makeEmptyDir makes dir, or accepts it when it is an empty directory, and
// reports whether it made it.
func makeEmptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("plugins: new: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("plugins: new: %s cannot hold the new plugin: %w", dir, err)
	case len(entries) > 0:
		return false, fmt.Errorf("plugins: new: %s is not empty (it holds %s); give a new or empty directory with --dir", dir, entries[0].Name())
	}
	return false, nil
}

func writeScaffold(dir, name, version string) ([]string, error) {
	src := sdk.Source()
	gomod, err := fs.ReadFile(src, "go.mod")
	if err != nil {
		return nil, fmt.Errorf("plugins: new: the SDK's source: %w", err)
	}
	gosum, err := fs.ReadFile(src, "go.sum")
	if err != nil {
		return nil, fmt.Errorf("plugins: new: the SDK's source: %w", err)
	}
	mod, err := pluginGoMod(name, gomod)
	if err != nil {
		return nil, err
	}
	data := struct{ Name, Type, SDKDir, Version string }{name, goTypeName(name), ScaffoldSDKDir, version}
	files := map[string][]byte{"go.mod": mod, "go.sum": gosum}
	for _, f := range []string{"main.go", "main_test.go", "README.md"} {
		text, err := renderScaffold(f+".tmpl", data)
		if err != nil {
			return nil, err
		}
		files[f] = text
	}
	var written []string
	for _, f := range []string{"go.mod", "go.sum", "main.go", "main_test.go", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, f), files[f], 0o644); err != nil {
			return written, fmt.Errorf("plugins: new: %w", err)
		}
		written = append(written, f)
	}
	err = fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		// The SDK's tests stay out: they need more than a plugin does.
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		text, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		to := path.Join(ScaffoldSDKDir, p)
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(path.Dir(to))), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(to)), text, 0o644); err != nil {
			return err
		}
		written = append(written, to)
		return nil
	})
	if err != nil {
		return written, fmt.Errorf("plugins: new: writing the SDK's source: %w", err)
	}
	return written, nil
}

func renderScaffold(name string, data any) ([]byte, error) {
	t, err := template.New(name).Delims("[[", "]]").Option("missingkey=error").ParseFS(scaffoldFiles, "scaffold/"+name)
	if err != nil {
		return nil, fmt.Errorf("plugins: new: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("plugins: new: %w", err)
	}
	return b.Bytes(), nil
}

// pluginGoMod returns the go.mod of a new plugin module named name, given
// the SDK's go.mod: the SDK replaced by its source in ScaffoldSDKDir, and
// what the SDK requires listed as the plugin's indirect requirements, as
// `go mod tidy` would, less the requirements of the SDK's own tests (the
// block after a "// Test-only" comment). The SDK's go.mod is finderbot's
// own file, as `go mod tidy` writes it, which is all this reads.
func pluginGoMod(name string, sdkMod []byte) ([]byte, error) {
	var goLine string
	var reqs []string
	inBlock, testOnly := false, false
	sc := bufio.NewScanner(bytes.NewReader(sdkMod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "go "):
			goLine = line
		case strings.HasPrefix(line, "// Test-only"):
			testOnly = true
		case line == "require (":
			inBlock = true
		case inBlock && line == ")":
			inBlock, testOnly = false, false
		case inBlock || strings.HasPrefix(line, "require "):
			fields := strings.Fields(strings.TrimPrefix(line, "require "))
			if len(fields) >= 2 && !testOnly {
				reqs = append(reqs, fmt.Sprintf("\t%s %s // indirect\n", fields[0], fields[1]))
			}
			testOnly = testOnly && inBlock
		}
	}
	slices.Sort(reqs) // in the order go mod tidy writes them
	if goLine == "" || len(reqs) == 0 {
		return nil, fmt.Errorf("plugins: new: the SDK's go.mod has no go line or no requirements:\n%s", sdkMod)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "module %s\n\n%s\n\nrequire %s %s\n\nrequire (\n%s)\n\n", name, goLine, SDKModule, noVersion, strings.Join(reqs, ""))
	fmt.Fprintf(&b, "// The SDK this plugin was written against, as the finderbot that wrote\n// it was built with it: see README.md.\nreplace %s => ./%s\n", SDKModule, ScaffoldSDKDir)
	return b.Bytes(), nil
}

// goTypeName returns the name of the plugin's type in main.go: the plugin's
// name in lower camel case ("order-bot" gives orderBot), made a Go
// identifier that names nothing else in main.go.
func goTypeName(name string) string {
	var b strings.Builder
	upper := false
	for _, r := range name {
		switch {
		case r == '-' || r == '_':
			upper = b.Len() > 0
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	id := b.String()
	switch {
	case id == "" || unicode.IsDigit(rune(id[0])):
		return "plugin" + id
	case token.IsKeyword(id) || shadowed[id] || !token.IsIdentifier(id):
		return id + "Plugin"
	}
	return id
}

// shadowed are the names main.go and main_test.go use, and predeclared ones
// that a type named so would hide.
var shadowed = map[string]bool{
	"main": true, "context": true, "fmt": true, "strconv": true, "sdk": true, "sdktest": true, "testing": true,
	"ctx": true, "req": true, "t": true,
	"string": true, "int": true, "error": true, "any": true, "byte": true, "rune": true, "bool": true,
	"nil": true, "true": true, "false": true, "len": true, "append": true, "make": true, "new": true,
}

// RunNew is `finderbot plugins new`: it writes a new plugin module named
// name into dir (default ./name) and tells on out what it wrote and what to
// run next.
func RunNew(out io.Writer, name, dir, version string) error {
	if dir == "" {
		dir = name
	}
	written, err := Scaffold(dir, name, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote the plugin %s in %s:\n", name, dir)
	sdkFiles := 0
	for _, f := range written {
		if strings.HasPrefix(f, ScaffoldSDKDir+"/") {
			sdkFiles++
			continue
		}
		fmt.Fprintf(out, "  %s\n", f)
	}
	fmt.Fprintf(out, "  %s/ (%d files: the SDK's source, which go.mod builds against)\n", ScaffoldSDKDir, sdkFiles)
	fmt.Fprintf(out, "next: cd %s && go test ./... && go build -o ../plugins/%s .   (see %s)\n", dir, name, filepath.Join(dir, "README.md"))
	return nil
}
