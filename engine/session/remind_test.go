package session

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
)

// slowAPI is a wkteam API whose QR codes are never scanned: every
// /getIPadLoginInfo is held for the long poll, then fails.
type slowAPI struct{ poll time.Duration }

func (slowAPI) MemberLogin(context.Context, string, string) (*upstream.Member, error) {
	return &upstream.Member{Token: "tok"}, nil
}
func (slowAPI) IsOnline(context.Context, string, string) (bool, error) { return false, nil }
func (slowAPI) SecondLogin(context.Context, string, string) (string, error) {
	return "", errors.New("no second login")
}
func (slowAPI) IPadLogin(context.Context, string, upstream.IPadLoginRequest) (*upstream.IPadLogin, error) {
	return &upstream.IPadLogin{WID: "w1", QRCodeURL: "http://qr.example/w1"}, nil
}
func (a slowAPI) GetIPadLoginInfo(ctx context.Context, _ string, _ upstream.LoginInfoRequest) (upstream.LoginOutcome, error) {
	select {
	case <-time.After(a.poll):
		return nil, errors.New("二维码已失效")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lines is a log sink that keeps the messages and their "left" values.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, strings.TrimSpace(string(p)))
	return len(p), nil
}

// with returns the lines holding msg, with the time stamp cut off.
func (l *lines) with(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, g := range l.got {
		if strings.Contains(g, `msg="`+msg+`"`) {
			_, rest, _ := strings.Cut(g, "msg=")
			out = append(out, rest)
		}
	}
	return out
}

// TestLongWaitsSayWhatTheyWaitFor keeps a keeper waiting for a QR scan
// that never comes, then in the pause after the failed login: every 30
// seconds, and no more often, the log says what it waits for and how long
// is left.
func TestLongWaitsSayWhatTheyWaitFor(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var log lines
		k := NewKeeper(slowAPI{poll: 100 * time.Second}, NewTokens(slowAPI{}, "a", "p"), store.NewMemory(store.Options{}), Options{
			Name: "shop", QRLifetime: 100 * time.Second, MinBackoff: 80 * time.Second, MaxBackoff: 80 * time.Second,
			Logger: slog.New(slog.NewTextHandler(&log, nil)),
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); k.LoginLoop(ctx) }()

		time.Sleep(99 * time.Second) // the QR code's long poll
		want := []string{
			`"waiting for the QR code to be scanned" account=shop qr_code_url=http://qr.example/w1 left=1m10s`,
			`"waiting for the QR code to be scanned" account=shop qr_code_url=http://qr.example/w1 left=40s`,
			`"waiting for the QR code to be scanned" account=shop qr_code_url=http://qr.example/w1 left=10s`,
		}
		if got := log.with("waiting for the QR code to be scanned"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("during the scan's wait the log said:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		time.Sleep(2 * time.Second) // the poll failed at 100s: the backoff began
		synctest.Wait()
		failed := log.with("login failed")
		if len(failed) != 1 {
			t.Fatalf("login failures logged: %q", failed)
		}
		_, retry, _ := strings.Cut(failed[0], "retry_in=")
		pause, err := time.ParseDuration(retry)
		if err != nil {
			t.Fatalf("retry_in of %q: %v", failed[0], err)
		}
		time.Sleep(pause - time.Second - time.Millisecond) // from 101s to just before the next attempt, at 100s+pause
		// retry_in is rounded to the millisecond: allow a second either way.
		got := log.with("waiting before the next login attempt")
		if len(got) != int((pause-time.Millisecond)/RemindEvery) {
			t.Errorf("during the %v pause the log said, every 30s:\n%s", pause, strings.Join(got, "\n"))
		}
		for i, g := range got {
			msg, left, _ := strings.Cut(g, " left=")
			d, err := time.ParseDuration(left)
			want := pause - time.Duration(i+1)*RemindEvery
			if msg != `"waiting before the next login attempt" account=shop` || err != nil || (d-want).Abs() > time.Second {
				t.Errorf("reminder %d of the %v pause: %q, want left=%v", i+1, pause, g, want.Round(time.Second))
			}
		}
		cancel()
		<-done
	})
}

// TestLeaseWaitSaysWhoHoldsIt keeps an app-key session waiting for a lease
// another daemon holds for 100 seconds: every 30 seconds the log names the
// holder and the time left.
func TestLeaseWaitSaysWhoHoldsIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var log lines
		st := store.NewMemory(store.Options{})
		if _, err := st.Lease(t.Context(), "appkey:k1", "daemon-a", 100*time.Second); err != nil {
			t.Fatal(err)
		}
		s := NewAppKeySession(nil, st, AppKeyOptions{
			Name: "cloud", Login: upstream.AppKeyLoginRequest{AppKey: "k1"}, Holder: "daemon-b", RenewMargin: time.Hour,
			Hooks: Hooks{Logger: slog.New(slog.NewTextHandler(&log, nil))},
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		time.Sleep(99 * time.Second) // the lease ends at 100s, the wait at 101s
		cancel()
		<-done
		const at = `"waiting for the app key's lease" session=cloud kind=appkey holder=daemon-a left=`
		want := []string{at + "1m11s", at + "41s", at + "11s"}
		if got := log.with("waiting for the app key's lease"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("during the lease wait the log said:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
