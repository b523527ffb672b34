package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/finderbot/finderbot/engine/session"
)

// ErrNotNow is wrapped by the errors of a login request the session's
// state does not allow: no QR code while none is awaited, a login asked
// for while one runs or while online, a code nobody waits for.
var ErrNotNow = errors.New("not now")

// Logins returns the login of every account, then of every session, in
// the configuration's order: each one's state and what a person must do
// for it (scan a QR code, solve a slider, give a code). Details are shown
// with the daemon's secrets replaced.
func (d *Daemon) Logins() []session.LoginState {
	out := make([]session.LoginState, 0, len(d.order)+len(d.cfg.Sessions))
	for _, name := range d.order {
		out = append(out, d.login(name))
	}
	for _, sc := range d.cfg.Sessions {
		out = append(out, d.login(sc.Name))
	}
	return out
}

// login is the named session's LoginState, under the name the
// configuration gives it (sessions of one app key share a login).
func (d *Daemon) login(name string) session.LoginState {
	ls := d.sessions[name].Login()
	ls.Name, ls.Detail = name, d.secrets.String(ls.Detail) // an upstream's error may quote the request
	return ls
}

// LoginQR returns the QR code the named account waits to have scanned, as
// a PNG image.
func (d *Daemon) LoginQR(name string) ([]byte, error) {
	a := d.accounts[name]
	if a == nil {
		return nil, fmt.Errorf("engine: account %q: %w", name, ErrUnknown)
	}
	ls := a.keeper.Login()
	if ls.QR == "" {
		return nil, fmt.Errorf("engine: %s is %s, not waiting for a scan: %w", name, ls.State, ErrNotNow)
	}
	code, err := qr.Encode(ls.QR, qr.M)
	if err != nil {
		return nil, fmt.Errorf("engine: %s: the QR code: %w", name, err)
	}
	return code.PNG(), nil
}

// StartLogin has the named account or session try to log in now, instead
// of at the end of the pause after a failed login. An account that is
// logged out has its next step begin at once, which starts the login. It
// fails with ErrNotNow while the session is online or a login attempt is
// under way (waiting for a scan or a code is part of one).
func (d *Daemon) StartLogin(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := d.sessions[name]
	if s == nil {
		return fmt.Errorf("engine: %q: %w", name, ErrUnknown)
	}
	if s.LoginNow() {
		return nil
	}
	ls := s.Login()
	switch {
	case ls.Online:
		return fmt.Errorf("engine: %s is online: %w", name, ErrNotNow)
	case ls.State == session.StateLoggedOut && d.accounts[name] != nil:
		d.sched.at(d.accounts[name], time.Now())
		return nil
	}
	return fmt.Errorf("engine: %s is logging in already (%s): %w", name, ls.State, ErrNotNow)
}

// SubmitCode hands the named account or session a code a person read: the
// verify code WeChat shows on the phone, or a token session's SMS code
// (the admin API's POST /api/accounts/NAME/code does the same).
func (d *Daemon) SubmitCode(name, code string) error {
	s := d.sessions[name]
	if s == nil {
		return fmt.Errorf("engine: %q: %w", name, ErrUnknown)
	}
	code = strings.TrimSpace(code)
	if code == "" || len(code) > 64 {
		return fmt.Errorf("engine: a code is 1 to 64 characters, got %d", len(code))
	}
	if !s.SubmitCode(code) {
		return fmt.Errorf("engine: %s is not waiting for a code: %w", name, ErrNotNow)
	}
	return nil
}
