package sim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// Example shows a test scripting the simulator from Go: a stranger writes
// to an account, and the test waits for the answer the code under test
// sends.
func Example() {
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	defer srv.Close()

	// The code under test would log in and sync here; this example only
	// logs in, then answers the injected message by hand.
	token, wID := login(srv.URL)
	wcID, _ := srv.WcID(wID)
	in, _ := srv.Inject(wcID, sim.Text("", "在吗?"))
	msg := in[0]
	post(srv.URL+"/privateSend", token, fmt.Sprintf(`{"wId":%q,"toUserName":%q,"myUserName":%q,"sessionId":%q,"content":"在的"}`,
		wID, msg.From, msg.To, msg.Session))

	sent, err := srv.WaitSent(context.Background(), 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(sent[0].Endpoint, sent[0].Content, sent[0].SessionID == msg.Session)
	// Output: /privateSend 在的 true
}

func login(base string) (token, wID string) {
	token = field(post(base+"/member/login", "", `{"account":"demo","password":"demo"}`), "Authorization")
	wID = field(post(base+"/iPadLogin", token, `{"wcId":"","proxy":3}`), "wId")
	post(base+"/getIPadLoginInfo", token, `{"wId":"`+wID+`","autoCheck":false}`)
	return token, wID
}

func post(url, token, body string) string {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// field cuts a string field out of a JSON reply; enough for an example.
func field(reply, name string) string {
	_, after, _ := strings.Cut(reply, `"`+name+`":"`)
	v, _, _ := strings.Cut(after, `"`)
	return v
}
