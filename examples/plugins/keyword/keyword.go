package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
	"gopkg.in/yaml.v3"

	"github.com/finderbot/finderbot/sdk"
)

// entry is one row of the keyword table.
type entry struct {
	// Match lists keywords; a message containing any of them matches,
	// ignoring case.
	Match []string `yaml:"match"`
	// Reply is the answer to a matching message.
	Reply string `yaml:"reply"`
}

// keyword answers from the table in path. A table that fails to load is
// reported by Health while the last good one keeps answering.
type keyword struct {
	path    string
	watcher *fsnotify.Watcher
	done    chan struct{}

	mu       sync.RWMutex
	onReload func() // called after every reload attempt; tests hook it
	table    []entry
	loadErr  error
}

var (
	_ sdk.Plugin        = (*keyword)(nil)
	_ sdk.HealthChecker = (*keyword)(nil)
	_ sdk.Closer        = (*keyword)(nil)
)

// newKeyword loads the table at path and watches it. It returns a usable
// plugin even with an error, which then concerns only the watching.
func newKeyword(path string) (*keyword, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	k := &keyword{path: abs, done: make(chan struct{})}
	k.reload()
	// Watch the directory, not the file: editors and deploy tools replace
	// files by renaming a new one over them, which a file watch would miss.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return k, fmt.Errorf("keyword: watch %s: %w", abs, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return k, fmt.Errorf("keyword: watch %s: %w", abs, err)
	}
	k.watcher = w
	go k.watch()
	return k, nil
}

func (k *keyword) watch() {
	defer close(k.done)
	for {
		select {
		case ev, ok := <-k.watcher.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == k.path {
				k.reload()
			}
		case err, ok := <-k.watcher.Errors:
			if !ok {
				return
			}
			fmt.Fprintln(os.Stderr, "keyword: watch:", err)
		}
	}
}

// reload reads the table; on failure it keeps the previous one.
func (k *keyword) reload() {
	table, err := loadTable(k.path)
	k.mu.Lock()
	if err == nil {
		k.table = table
	}
	k.loadErr = err
	hook := k.onReload
	k.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// loadTable reads and checks a keyword table, naming file and line in errors.
// sdk.ReadFile refuses at once a table that is not a regular file or is too
// large: a named pipe in its place would otherwise hang every reload.
func loadTable(path string) ([]entry, error) {
	data, err := sdk.ReadFile(path, sdk.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("keyword: %w", err)
	}
	var table []entry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&table); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty table
		return nil, fmt.Errorf("keyword: %s: %w", path, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	for i, e := range table {
		line := 0
		if len(root.Content) == 1 && i < len(root.Content[0].Content) {
			line = root.Content[0].Content[i].Line
		}
		switch {
		case len(e.Match) == 0:
			return nil, fmt.Errorf("keyword: %s:%d: entry has no match keywords", path, line)
		case slices.ContainsFunc(e.Match, func(m string) bool { return strings.TrimSpace(m) == "" }):
			return nil, fmt.Errorf("keyword: %s:%d: an empty keyword would match every message", path, line)
		case strings.TrimSpace(e.Reply) == "":
			return nil, fmt.Errorf("keyword: %s:%d: entry has no reply", path, line)
		}
	}
	return table, nil
}

func (k *keyword) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name:        "keyword",
		Version:     "1.0.0",
		Description: "Answers messages from a keyword table file, reloaded when the file changes.",
		Actions: []sdk.Action{{
			Name:        "reply",
			Description: "Reply with the first table entry whose keyword the message contains.",
			Params: []sdk.Param{{
				Name:        "fallback",
				Description: "the reply when no keyword matches; empty: no reply",
			}},
		}},
	}, nil
}

func (k *keyword) Handle(_ context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	if req.Action != "reply" {
		return nil, fmt.Errorf("keyword: unknown action %q", req.Action)
	}
	if req.Message == nil {
		return nil, errors.New("keyword: reply needs a message; use it in a message rule, not a cron schedule")
	}
	if text := req.Message.Text; text != "" {
		if reply, ok := k.match(text); ok {
			return sdk.TextReply(reply), nil
		}
	}
	if fb := req.Param("fallback"); fb != "" {
		return sdk.TextReply(fb), nil
	}
	return &sdk.HandleResponse{}, nil
}

func (k *keyword) match(text string) (string, bool) {
	text = strings.ToLower(text)
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, e := range k.table {
		for _, m := range e.Match {
			if strings.Contains(text, strings.ToLower(m)) {
				return e.Reply, true
			}
		}
	}
	return "", false
}

// Health reports a table that failed to load, and that the previous one is
// still answering.
func (k *keyword) Health(context.Context) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.loadErr != nil {
		return fmt.Errorf("%w (answering from the %d entries loaded before)", k.loadErr, len(k.table))
	}
	if k.watcher == nil {
		return fmt.Errorf("keyword: not watching %s; changes need a restart", k.path)
	}
	return nil
}

// Close stops watching the table.
func (k *keyword) Close(context.Context) error {
	if k.watcher == nil {
		return nil
	}
	err := k.watcher.Close()
	<-k.done
	return err
}
