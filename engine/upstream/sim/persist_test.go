package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openServer serves a simulator whose state is at path; stop closes the
// server, then the state, as a process ending cleanly does.
func openServer(t *testing.T, path string) (srv *Server, stop func()) {
	t.Helper()
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	srv = NewServer(Options{AutoConfirm: true, State: st})
	if err := st.SetURL(srv.URL); err != nil {
		t.Fatal(err)
	}
	return srv, func() { srv.Close(); st.Close() }
}

type syncPage struct {
	Code string `json:"code"`
	Data struct {
		List []struct {
			Content struct {
				Msg struct {
					Content struct{ String string }
				} `json:"msg"`
			} `json:"content"`
		} `json:"list"`
		KeyBuff string `json:"keyBuff"`
	} `json:"data"`
}

func (p syncPage) texts() []string {
	var out []string
	for _, it := range p.Data.List {
		out = append(out, it.Content.Msg.Content.String)
	}
	return out
}

// TestStateResumesAClient stops a simulator with a state file and starts
// another on the file: the client's member token and wId are still good,
// its keyBuff still points after the messages it has, the message
// injected while nothing served the file comes next, and what was sent is
// remembered.
func TestStateResumesAClient(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sim.json")
	srv, stop := openServer(t, path)
	tok, wID, wcID := session(t, srv.URL)
	var page syncPage
	post(t, srv.URL+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":""}`, &page)
	if len(page.Data.List) != 19 {
		t.Fatalf("first page: %d messages, want the 19 of the seed", len(page.Data.List))
	}
	if _, err := srv.Inject(wcID, Text("", "before the stop")); err != nil {
		t.Fatal(err)
	}
	var sent struct{ Code string }
	post(t, srv.URL+"/sendText", tok, `{"wId":"`+wID+`","wcId":"wxid_friend","content":"hi"}`, &sent)
	stop()

	wc, msgs, err := InjectFile(context.Background(), path, "", Text("", "while stopped"))
	if err != nil || wc != wcID || len(msgs) != 1 {
		t.Fatalf("InjectFile into the stopped simulator: %q, %v, %v", wc, msgs, err)
	}

	srv, stop = openServer(t, path)
	defer stop()
	var m struct {
		Data struct{ Authorization string } `json:"data"`
	}
	post(t, srv.URL+"/member/login", "", `{"account":"demo","password":"demo"}`, &m)
	if m.Data.Authorization != tok {
		t.Errorf("member login after the restart: token %q, want the one the client holds", m.Data.Authorization)
	}
	var online struct{ Code string }
	post(t, srv.URL+"/isOnline", tok, `{"wId":"`+wID+`"}`, &online)
	if online.Code != "1000" {
		t.Errorf("isOnline after the restart: %q, want 1000", online.Code)
	}
	var next syncPage
	post(t, srv.URL+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":"`+page.Data.KeyBuff+`"}`, &next)
	if got := strings.Join(next.texts(), "|"); got != "before the stop|while stopped" {
		t.Errorf("the page after the restart holds %q, want the two messages after the cursor", got)
	}
	if s := srv.Sent(); len(s) != 1 || s[0].Content != "hi" {
		t.Errorf("Sent after the restart: %+v, want the one sendText", s)
	}
}

// TestInjectFileReachesTheRunningSimulator injects while a process serves
// the file: the message goes through it, not under it into the file.
func TestInjectFileReachesTheRunningSimulator(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sim.json")
	srv, stop := openServer(t, path)
	defer stop()
	tok, wID, wcID := session(t, srv.URL)
	var page syncPage
	post(t, srv.URL+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":""}`, &page)

	wc, _, err := InjectFile(context.Background(), path, "", Text("", "live"))
	if err != nil || wc != wcID {
		t.Fatalf("InjectFile: %q, %v", wc, err)
	}
	var next syncPage
	post(t, srv.URL+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":"`+page.Data.KeyBuff+`"}`, &next)
	if got := strings.Join(next.texts(), "|"); got != "live" {
		t.Errorf("the next page holds %q, want the injected message", got)
	}
	if _, err := OpenState(path); !errors.Is(err, ErrStateInUse) {
		t.Errorf("OpenState of a file in use: %v, want ErrStateInUse", err)
	}
}

// TestDamagedStateIsRefused opens state files a crash, a disk or a person
// could have spoilt: each is refused with the file's name and the problem.
func TestDamagedStateIsRefused(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct{ content, want string }{
		"empty":         {"", "the file is empty (0 bytes)"},
		"cut short":     {`{"version":1,"members":[`, "it was cut short"},
		"not JSON":      {"version: 1\n", "invalid JSON at line 1"},
		"wrong type":    {"{\n\"version\":1,\n\"nextWcId\":\"x\"}", "line 3: nextWcId holds a JSON string"},
		"unknown field": {`{"version":1,"colour":1}`, `unknown field "colour"`},
		"new version":   {`{"version":2}`, "version 2, want 1"},
		"orphan instance": {`{"version":1,"instances":[{"wId":"w1","member":"demo","state":"online"}]}`,
			`instances[0] (wId w1): member "demo" is not among the members`},
		"messages out of order": {`{"version":1,"accounts":[{"wcId":"wx","lastSeq":5,"messages":[{"seq":3,"id":"1","item":{}},{"seq":2,"id":"2","item":{}}]}]}`,
			"accounts[0] (wcId wx): messages[1]: seq 2 out of order"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "sim.json")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenState(path)
			if err == nil {
				t.Fatal("a damaged state was opened")
			}
			for _, w := range []string{"the simulator state " + path + " is damaged: ", c.want, "move it aside to start over"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err, w)
				}
			}
		})
	}
}

// TestStateKeepsSessionTokens restarts a simulator with a state file
// between the logins of the token and app-key APIs and their use: the
// tokens are still good, and the mobile session is still the current one.
func TestStateKeepsSessionTokens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sim.json")
	srv, stop := openServer(t, path)
	var mobile struct {
		Code int `json:"code"`
		Data struct {
			AccessToken, RefreshToken struct{ Value string }
		} `json:"data"`
	}
	post(t, srv.URL+"/auth/mobile/login", "", `{"mobile":"`+DefaultMobile+`","validateNo":"`+DefaultSMSCode+`"}`, &mobile)
	var app struct {
		Data struct{ Token string } `json:"data"`
	}
	post(t, srv.URL+"/api-cloud/auth/login", "", `{"appKey":"`+DefaultAppKey+`","appSecret":"`+DefaultAppSecret+`"}`, &app)
	if mobile.Code != 0 || app.Data.Token == "" {
		t.Fatalf("logins: %+v, %+v", mobile, app)
	}
	stop()

	srv, stop = openServer(t, path)
	defer stop()
	if st := srv.AppKeyTokenState(app.Data.Token); st != TokenValid {
		t.Errorf("the app-key token after the restart is %s, want %s", st, TokenValid)
	}
	var refreshed struct{ Code int }
	post(t, srv.URL+"/app/auth/token/refresh", "", `{"accessToken":"`+mobile.Data.AccessToken.Value+`","refreshToken":"`+mobile.Data.RefreshToken.Value+`"}`, &refreshed)
	if refreshed.Code != 0 {
		t.Errorf("refresh after the restart: code %d, want 0", refreshed.Code)
	}
	if !srv.KickDevice(DefaultMobile) {
		t.Error("after the restart the mobile user has no current session to kick")
	}
}
