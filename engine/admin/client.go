package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
)

// Client calls a running daemon's admin API, for the finderbot commands
// that act on a daemon: status, deadletters, reload, store backup and
// check.
type Client struct {
	addr   string
	token  string
	source string // where addr came from, for errors
	hc     *http.Client
}

// ErrNoDaemon is a connection to the admin API refused: no daemon runs
// there. The client's errors wrap it with the address and where it came
// from.
var ErrNoDaemon = errors.New("no finderbot daemon answers")

// ErrAdminOff is a configuration without an admin listener.
var ErrAdminOff = errors.New("admin: admin.listen is empty, so the daemon serves no admin API")

// maxJSON bounds a JSON answer read: the dead letters at their bound are
// well below it.
const maxJSON = 256 << 20

// NewClient returns a client of the admin API at addr (host:port), sending
// token as the bearer token unless it is "". A listener on every address
// (":9090", "0.0.0.0:9090") is reached on loopback. source says where addr
// came from ("admin.listen in finderbot.yaml", "--addr"), for errors.
func NewClient(addr, token, source string) (*Client, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %s: %q is not host:port", source, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{
		addr:   net.JoinHostPort(host, port),
		token:  token,
		source: source,
		// No proxy: the daemon is local, and the token must not travel
		// through one. No timeout past the dial: a check of a large store
		// takes its time, and the caller's ctx ends a wait (Ctrl-C).
		hc: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil}},
	}, nil
}

// ConfigClient returns a client of the admin API cfg configures, with its
// admin.token; ErrAdminOff when admin.listen is empty.
func ConfigClient(cfg *config.Config) (*Client, error) {
	if cfg.Admin.Listen == "" {
		return nil, fmt.Errorf("%w (%s)", ErrAdminOff, cfg.Path)
	}
	return NewClient(cfg.Admin.Listen, cfg.Admin.Token.Reveal(), "admin.listen in "+cfg.Path)
}

// Addr returns the address the client calls.
func (c *Client) Addr() string { return c.addr }

// ResponseError is an answer of the daemon other than a success.
type ResponseError struct {
	// Addr is the daemon's address.
	Addr string
	// StatusCode and Status are the answer's HTTP status.
	StatusCode int
	Status     string
	// Message is the daemon's error message.
	Message string
	// TokenGiven says whether the request bore a token.
	TokenGiven bool
}

func (e *ResponseError) Error() string {
	switch {
	case e.StatusCode == http.StatusUnauthorized && !e.TokenGiven:
		return fmt.Sprintf("admin: the daemon at %s requires its admin token, and none was given: set admin.token in the configuration, or pass --token", e.Addr)
	case e.StatusCode == http.StatusUnauthorized:
		return fmt.Sprintf("admin: the daemon at %s refused the token given: it is not the daemon's admin.token", e.Addr)
	}
	return fmt.Sprintf("admin: the daemon at %s answered %s: %s", e.Addr, e.Status, e.Message)
}

// do calls the API and returns its answer when it is a success; another
// answer is a *ResponseError, a refused connection ErrNoDaemon.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w at %s (%s); is it running?", ErrNoDaemon, c.addr, c.source)
		}
		return nil, fmt.Errorf("admin: the admin API at %s: %w", c.addr, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e apiError
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = strconv.Quote(string(data))
	}
	return nil, &ResponseError{Addr: c.addr, StatusCode: resp.StatusCode, Status: resp.Status, Message: e.Error, TokenGiven: c.token != ""}
}

// raw calls the API and returns the body of its successful answer.
func (c *Client) raw(ctx context.Context, method, path string) ([]byte, error) {
	resp, err := c.do(ctx, method, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return nil, fmt.Errorf("admin: reading the answer of the daemon at %s to %s: %w", c.addr, path, err)
	}
	if len(data) > maxJSON {
		return nil, fmt.Errorf("admin: the answer of the daemon at %s to %s is over %d MiB", c.addr, path, maxJSON>>20)
	}
	return data, nil
}

// call calls the API and decodes the JSON of its successful answer into
// out.
func (c *Client) call(ctx context.Context, method, path string, out any) error {
	data, err := c.raw(ctx, method, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin: the answer of the daemon at %s to %s: %w", c.addr, path, err)
	}
	return nil
}

// StatusJSON returns the body of /api/status as the daemon wrote it.
func (c *Client) StatusJSON(ctx context.Context) ([]byte, error) {
	return c.raw(ctx, http.MethodGet, "/api/status")
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, http.MethodGet, "/api/status", &st)
	return st, err
}

// DeadLetters lists the dead letters, oldest first: at most limit of them,
// 0 for all, or the daemon's default (1,000) when limit is negative.
func (c *Client) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	var out []store.DeadLetter
	err := c.call(ctx, http.MethodGet, deadLettersPath(limit), &out)
	return out, err
}

// DeadLettersJSON returns the body of /api/dead-letters as the daemon
// wrote it, limited as DeadLetters.
func (c *Client) DeadLettersJSON(ctx context.Context, limit int) ([]byte, error) {
	return c.raw(ctx, http.MethodGet, deadLettersPath(limit))
}

func deadLettersPath(limit int) string {
	if limit < 0 {
		return "/api/dead-letters"
	}
	return "/api/dead-letters?limit=" + strconv.Itoa(limit)
}

// RetryDeadLetter queues the dead letter of item id again and returns the
// item queued.
func (c *Client) RetryDeadLetter(ctx context.Context, id uint64) (store.Item, error) {
	var it store.Item
	err := c.call(ctx, http.MethodPost, fmt.Sprintf("/api/dead-letters/%d/retry", id), &it)
	return it, err
}

// RetryDeadLetters queues again every dead letter, or those of the action
// kind given (reply, send, plugin), and returns the items queued.
func (c *Client) RetryDeadLetters(ctx context.Context, kind string) ([]store.Item, error) {
	path := "/api/dead-letters/retry"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	var out Retried
	err := c.call(ctx, http.MethodPost, path, &out)
	return out.Items, err
}

// DropDeadLetter forgets the dead letter of item id.
func (c *Client) DropDeadLetter(ctx context.Context, id uint64) error {
	var out map[string]string
	return c.call(ctx, http.MethodDelete, fmt.Sprintf("/api/dead-letters/%d", id), &out)
}

// ReloadError is a reload the daemon refused: its rule files are broken,
// and it keeps the rules it had.
type ReloadError struct {
	// Problems are the daemon's words: each problem with its file, line
	// and column.
	Problems string
}

func (e *ReloadError) Error() string {
	return "rules not reloaded; the daemon keeps its previous rules:\n" + e.Problems
}

// Reload asks the daemon to reload its rules and returns how many are in
// force; broken rule files are a *ReloadError.
func (c *Client) Reload(ctx context.Context) (int, error) {
	var out Reloaded
	err := c.call(ctx, http.MethodPost, "/api/reload", &out)
	var re *ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusUnprocessableEntity {
		return 0, &ReloadError{Problems: re.Message}
	}
	return out.Rules, err
}

// Backup writes a consistent copy of the daemon's store to file (through
// file.tmp, synced and checked before it is renamed), and returns the
// check's report and the bytes copied.
func (c *Client) Backup(ctx context.Context, file string) (store.Report, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/store/backup", nil)
	if err != nil {
		return store.Report{}, 0, err
	}
	defer resp.Body.Close()
	var n int64
	rep, err := store.WriteVerified(file, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("the copy ended at %d of its %d bytes", n, resp.ContentLength)
		}
		return err
	})
	return rep, n, err
}

// Check checks the daemon's store completely and returns the report.
func (c *Client) Check(ctx context.Context) (store.Report, error) {
	var rep store.Report
	err := c.call(ctx, http.MethodGet, "/api/store/check", &rep)
	return rep, err
}
