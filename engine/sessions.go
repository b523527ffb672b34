package engine

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/upstream"
)

// buildSessions prepares the token and app-key sessions of the
// configuration. Sessions naming the same app key share one login: a new
// login would kick the previous holder.
func (d *Daemon) buildSessions(hc *http.Client) error {
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	byKey := map[string]*session.AppKeySession{}
	for _, sc := range d.cfg.Sessions {
		baseURL := sc.BaseURL
		if baseURL == config.SimURL {
			var err error
			if baseURL, err = d.startSim(); err != nil {
				return err
			}
		}
		name := sc.Name
		hooks := session.Hooks{
			OnEvent: d.onSessionEvent,
			OnState: func(state string) { d.setSessionState(name, state) },
			Logger:  d.log,
			Secrets: d.secrets,
		}
		// Sharing accounts, a session runs on the one daemon holding its
		// lease, its logins and refreshes fenced by it.
		runner := func(run func(context.Context) error) func(context.Context) error { return run }
		if d.cluster != nil {
			hooks.Fence = d.cluster.sessionFence(name)
			runner = func(run func(context.Context) error) func(context.Context) error { return d.cluster.leased(name, run) }
		}
		switch sc.Kind {
		case config.KindToken:
			api, err := upstream.NewTokenAuth(baseURL, upstream.WithHTTPClient(hc), upstream.WithCallTimeout(d.cfg.Upstream.Timeout))
			if err != nil {
				return fmt.Errorf("engine: session %s: %w", sc.Name, err)
			}
			s := session.NewTokenSession(api, d.store, session.TokenOptions{
				Name: sc.Name,
				Login: upstream.MobileLoginRequest{CompanyType: sc.CompanyType, Mobile: sc.Mobile, ProductType: sc.ProductType,
					Source: sc.Source, ValidateNo: sc.ValidateNo.Reveal()},
				DeviceNumber: sc.DeviceNumber, RefreshMargin: sc.RefreshMargin, CheckInterval: sc.CheckInterval,
				MaxBackoff: d.cfg.Sync.MaxBackoff, Hooks: hooks,
			})
			d.sessions[sc.Name] = s
			d.runners = append(d.runners, runner(s.Run))
		case config.KindAppKey:
			if s := byKey[sc.AppKey]; s != nil {
				d.sessions[sc.Name] = s
				continue
			}
			api, err := upstream.NewAppKeyAuth(baseURL, upstream.WithHTTPClient(hc), upstream.WithCallTimeout(d.cfg.Upstream.Timeout))
			if err != nil {
				return fmt.Errorf("engine: session %s: %w", sc.Name, err)
			}
			s := session.NewAppKeySession(api, d.store, session.AppKeyOptions{
				Name:   sc.Name,
				Login:  upstream.AppKeyLoginRequest{AppKey: sc.AppKey, AppSecret: sc.AppSecret.Reveal(), Encrypt: sc.Encrypt},
				Holder: holder, RenewMargin: sc.RenewMargin, MaxBackoff: d.cfg.Sync.MaxBackoff, Hooks: hooks,
			})
			byKey[sc.AppKey] = s
			d.sessions[sc.Name] = s
			d.runners = append(d.runners, runner(s.Run))
		}
	}
	return nil
}

// Session returns the named session (an account or a configured session),
// or nil.
func (d *Daemon) Session(name string) session.Session { return d.sessions[name] }

// SessionToken returns the current token of the named session, for plugins.
// The daemon, not the plugin, keeps it fresh.
func (d *Daemon) SessionToken(ctx context.Context, name string) (string, error) {
	s := d.sessions[name]
	if s == nil {
		return "", fmt.Errorf("engine: no session named %q", name)
	}
	return s.Token(ctx)
}
