package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// raw sends a request and returns the reply's status, raw bytes and JSON
// (numbers kept as json.Number; nil when the reply is not JSON).
func raw(t *testing.T, method, url, token, body string) (int, []byte, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		v = nil // not JSON: callers that expect JSON fail on the nil map
	}
	return resp.StatusCode, data, v
}

// wantKeys fails unless obj has exactly the given keys.
func wantKeys(t *testing.T, what string, obj any, keys ...string) map[string]any {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Fatalf("%s = %T %v, want an object", what, obj, obj)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s has no %q: %v", what, k, m)
		}
	}
	if len(m) != len(keys) {
		t.Errorf("%s has %d keys, want %d (%v): %v", what, len(m), len(keys), keys, m)
	}
	return m
}

// wkOKShape checks a wkteam success reply and returns its data.
func wkOKShape(t *testing.T, what string, data []byte, v map[string]any) any {
	t.Helper()
	if !bytes.HasPrefix(data, []byte(`{"code":"1000","message":"处理成功","data":`)) {
		t.Fatalf("%s: reply %.120s, want the documented success envelope", what, data)
	}
	wantKeys(t, what, v, "code", "message", "data")
	return v["data"]
}

func wkFailShape(t *testing.T, what string, data []byte, v map[string]any) string {
	t.Helper()
	wantKeys(t, what, v, "code", "message", "data")
	if v["code"] != "1001" || v["data"] != nil {
		t.Fatalf("%s: reply %s, want code \"1001\" and data null", what, data)
	}
	return v["message"].(string)
}

// TestWkteamShapes speaks raw HTTP to the simulator and checks every reply
// against the documents: envelope, field names, code as a string.
func TestWkteamShapes(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{AutoConfirm: true})
	defer s.Close()
	u := s.URL

	_, data, v := raw(t, "POST", u+"/member/login", "", `{"account":"demo","password":"demo"}`)
	d := wantKeys(t, "member/login data", wkOKShape(t, "/member/login", data, v), "Authorization", "status", "callbackUrl")
	tok := d["Authorization"].(string)
	if d["status"] != json.Number("0") {
		t.Errorf("status = %v, want 0", d["status"])
	}
	_, data, v = raw(t, "POST", u+"/member/login", "", `{"account":"demo","password":"x"}`)
	wkFailShape(t, "/member/login bad password", data, v)

	_, data, v = raw(t, "POST", u+"/iPadLogin", tok, `{"wcId":"","deviceType":"ipad","proxy":3}`)
	d = wantKeys(t, "iPadLogin data", wkOKShape(t, "/iPadLogin", data, v), "wId", "qrCodeUrl")
	wID := d["wId"].(string)

	_, data, v = raw(t, "POST", u+"/getIPadLoginInfo", tok, `{"wId":"`+wID+`","autoCheck":false}`)
	d = wantKeys(t, "getIPadLoginInfo data", wkOKShape(t, "/getIPadLoginInfo", data, v),
		"country", "wAccount", "deviceType", "city", "signature", "nickName", "sex", "headUrl", "type",
		"smallHeadImgUrl", "wcId", "wId", "mobilePhone", "uin", "status", "username")
	wcID := d["wcId"].(string)
	if d["wId"] != wID || d["status"] != json.Number("3") {
		t.Errorf("profile = %v", d)
	}

	_, data, v = raw(t, "POST", u+"/isOnline", tok, `{"wId":"`+wID+`"}`)
	wkOKShape(t, "/isOnline", data, v)

	_, data, v = raw(t, "POST", u+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":""}`)
	d = wantKeys(t, "syncFinder data", wkOKShape(t, "/syncFinder", data, v), "list", "keyBuff")
	list := d["list"].([]any)
	if len(list) != 19 || d["keyBuff"] != SeedKeyBuff {
		t.Fatalf("first page: %d items, keyBuff %v", len(list), d["keyBuff"])
	}
	item := wantKeys(t, "item", list[9], "syncKeyType", "itemType", "subType", "content")
	content := wantKeys(t, "item content", item["content"], "msg", "extinfo", "isSender", "msgSessionId", "seq")
	msg := wantKeys(t, "item msg", content["msg"], "Status", "ImgBuf", "Content", "CreateTime", "MsgSeq", "NewMsgId",
		"FromUserName", "ToUserName", "MsgType", "ImgStatus", "MsgId", "MsgSource")
	if msg["NewMsgId"] != json.Number("1767797523284146072") || msg["Content"].(map[string]any)["string"] != "哈喽" {
		t.Errorf("seed item 10 = %v", msg)
	}

	// The first page is the seed page, item for item.
	var seed struct {
		Data struct {
			List    []json.RawMessage `json:"list"`
			KeyBuff string            `json:"keyBuff"`
		} `json:"data"`
	}
	if err := json.Unmarshal(seedPage, &seed); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Data struct {
			List []json.RawMessage `json:"list"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for i := range seed.Data.List {
		var a, b bytes.Buffer
		_ = json.Compact(&a, seed.Data.List[i])
		_ = json.Compact(&b, got.Data.List[i])
		if a.String() != b.String() {
			t.Fatalf("item %d differs from the seed:\n got %s\nwant %s", i, b.String(), a.String())
		}
	}

	_, data, v = raw(t, "POST", u+"/getSessionId", tok, `{"wId":"`+wID+`","toUserName":"fv1_ab@findermsgstranger","myUserName":"v2_x@finder","type":1}`)
	d = wantKeys(t, "getSessionId data", wkOKShape(t, "/getSessionId", data, v), "sessionId")
	if d["sessionId"] != "ab@findermsg" {
		t.Errorf("sessionId = %v", d["sessionId"])
	}

	_, data, v = raw(t, "POST", u+"/privateSend", tok, `{"wId":"`+wID+`","toUserName":"fv1_ab@findermsgstranger","myUserName":"v2_x@finder","sessionId":"ab@findermsg","content":"你好"}`)
	d = wantKeys(t, "privateSend data", wkOKShape(t, "/privateSend", data, v), "type", "msgId", "newMsgId", "createTime", "wcId")
	if n, err := d["newMsgId"].(json.Number).Int64(); err != nil || n < 1<<53 {
		t.Errorf("newMsgId = %v", d["newMsgId"])
	}
	_, data, v = raw(t, "POST", u+"/sendText", tok, `{"wId":"`+wID+`","wcId":"wxid_friend","content":"hi"}`)
	wantKeys(t, "sendText data", wkOKShape(t, "/sendText", data, v), "type", "msgId", "newMsgId", "createTime", "wcId")

	_, data, v = raw(t, "POST", u+"/secondLogin", tok, `{"wcId":"`+wcID+`"}`)
	d = wkOKShape(t, "/secondLogin", data, v).(map[string]any)
	if d["wId"] == wID || d["wcId"] != wcID {
		t.Errorf("secondLogin data = %v", d)
	}
	// The old instance is offline now.
	_, data, v = raw(t, "POST", u+"/isOnline", tok, `{"wId":"`+wID+`"}`)
	wkFailShape(t, "/isOnline of a replaced instance", data, v)
	_, data, v = raw(t, "POST", u+"/syncFinder", tok, `{"wId":"`+wID+`","keyBuff":""}`)
	if msg := wkFailShape(t, "/syncFinder offline", data, v); !strings.Contains(msg, "离线") {
		t.Errorf("offline message = %q", msg)
	}
	_, data, v = raw(t, "POST", u+"/syncFinder", "wrong-token", `{"wId":"`+wID+`","keyBuff":""}`)
	if msg := wkFailShape(t, "/syncFinder bad token", data, v); !strings.Contains(msg, "Authorization") {
		t.Errorf("bad token message = %q", msg)
	}

	// Without the JSON content type the documents insist on: 415.
	resp, err := http.Post(u+"/syncFinder", "application/x-www-form-urlencoded", strings.NewReader("wId=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form post: status %d, want 415", resp.StatusCode)
	}
	if st, _, _ := raw(t, "GET", u+"/syncFinder", "", ""); st != http.StatusMethodNotAllowed {
		t.Errorf("GET /syncFinder: status %d, want 405", st)
	}
}

// TestIntCodeShapes checks the token API (seed 000) and the app-key API
// (seed 001): code is an int, the message is "msg".
func TestIntCodeShapes(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{})
	defer s.Close()
	u := s.URL
	intShape := func(what string, data []byte, v map[string]any, code string) any {
		t.Helper()
		if !bytes.HasPrefix(data, []byte(`{"code":`+code+`,"msg":`)) {
			t.Fatalf("%s: reply %.100s, want an int code %s", what, data, code)
		}
		wantKeys(t, what, v, "code", "msg", "data")
		return v["data"]
	}

	_, data, v := raw(t, "POST", u+"/auth/mobile/login", "", `{"companyType":0,"mobile":"13800138000","productType":0,"source":"","validateNo":"123456"}`)
	d := wantKeys(t, "mobile login data", intShape("/auth/mobile/login", data, v, "0"), "accessToken", "refreshToken", "userInfo")
	at := wantKeys(t, "accessToken", d["accessToken"], "expire", "value")
	rt := wantKeys(t, "refreshToken", d["refreshToken"], "expire", "value")
	wantKeys(t, "userInfo", d["userInfo"], "avatarUrl", "companyType", "id", "mobile", "nickName", "realName", "userName")
	if _, err := time.Parse(time.RFC3339, at["expire"].(string)); err != nil {
		t.Errorf("accessToken.expire: %v", err)
	}
	_, data, v = raw(t, "POST", u+"/auth/mobile/login", "", `{"mobile":"13800138000","validateNo":"000000"}`)
	if intShape("/auth/mobile/login bad code", data, v, "400") != nil {
		t.Error("failure data is not null")
	}

	_, data, v = raw(t, "POST", u+"/app/auth/token/refresh", "", `{"accessToken":"`+at["value"].(string)+`","refreshToken":"`+rt["value"].(string)+`"}`)
	nt := wantKeys(t, "refresh data", intShape("/app/auth/token/refresh", data, v, "0"), "expire", "value")

	_, data, v = raw(t, "GET", u+"/wx/pc/check-login-status/dev-1", "Bearer "+nt["value"].(string), "")
	d = wantKeys(t, "check-login-status data", intShape("/wx/pc/check-login-status", data, v, "0"), "isLogin", "lastLoginTime")
	if d["isLogin"] != true {
		t.Errorf("isLogin = %v", d["isLogin"])
	}
	_, data, v = raw(t, "GET", u+"/wx/pc/check-login-status/dev-1", "Bearer nope", "")
	intShape("/wx/pc/check-login-status bad token", data, v, "401")

	_, data, v = raw(t, "POST", u+"/api-cloud/auth/login", "", `{"appKey":"`+DefaultAppKey+`","appSecret":"`+DefaultAppSecret+`","encrypt":false}`)
	if !bytes.HasPrefix(data, []byte(`{"code":0,"msg":"ok","data":{"token":"`)) {
		t.Errorf("app-key login = %s", data)
	}
	wantKeys(t, "app-key data", v["data"], "token")
	_, data, _ = raw(t, "POST", u+"/api-cloud/auth/login", "", `{"appKey":"x","appSecret":"y"}`)
	if string(data) != `{"code":1001,"msg":"apiKey does not exist","data":null}` {
		t.Errorf("unknown key = %s, want the documented failure", data)
	}
}
