package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Refusal messages. The documents do not list them; these are what the
// client's default patterns recognise (offline: "离线", "不在线",
// "实例不存在"; token: "Authorization").
const (
	msgBadLogin      = "账号或密码错误"
	msgNoToken       = "Authorization无效,请先调用/member/login"
	msgTokenExpired  = "Authorization已过期,请重新调用/member/login"
	msgFrozen        = "账号已冻结"
	msgMemberExpired = "账号已过期"
	msgNoInstance    = "实例不存在"
	msgOffline       = "实例已离线,请重新登录"
	msgNotOnline     = "该实例不在线"
	msgVerifyCode    = "请在iPad上输入验证码"
	msgBadVerifyCode = "验证码错误"
	msgQRExpired     = "二维码已失效,请重新获取"
	msgNoSecond      = "该微信号未在本账号登录过,请扫码登录"
	msgBadKeyBuff    = "keyBuff无效"
)

type member struct {
	Member
	token   string
	expired bool
}

type instState int

const (
	statePending instState = iota // QR code issued, not yet logged in
	stateOnline
	stateOffline
)

func (s instState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateOnline:
		return "online"
	}
	return "offline"
}

// instance is one login instance (wId).
type instance struct {
	wID        string
	owner      *member
	deviceType string
	created    time.Time

	mu           sync.Mutex
	state        instState
	wcID         string // requested at /iPadLogin, or set when the login completes
	acct         *account
	confirmed    chan struct{}
	isConfirmed  bool
	scanAs       string
	script       []LoginStep
	awaitingCode bool
	keyBuff      string
}

// routes registers every endpoint.
func (u *Upstream) routes() {
	m := http.NewServeMux()
	wk := map[string]http.HandlerFunc{
		"/member/login":     u.memberLogin,
		"/iPadLogin":        u.iPadLogin,
		"/getIPadLoginInfo": u.getIPadLoginInfo,
		"/secondLogin":      u.secondLogin,
		"/isOnline":         u.isOnline,
		"/syncFinder":       u.syncFinder,
		"/privateSend":      u.privateSend,
		"/getSessionId":     u.getSessionID,
		"/sendText":         u.sendText,
	}
	for path, h := range wk {
		m.Handle("POST "+path, u.withFaults(path, faultWkteam, h))
	}
	m.Handle("POST /auth/mobile/login", u.withFaults("/auth/mobile/login", faultInt, u.mobile.login))
	m.Handle("POST /app/auth/token/refresh", u.withFaults("/app/auth/token/refresh", faultInt, u.mobile.refreshToken))
	m.Handle("GET /wx/pc/check-login-status/{deviceNumber}", u.withFaults("/wx/pc/check-login-status", faultInt, u.mobile.checkLoginStatus))
	m.Handle("POST /api-cloud/auth/login", u.withFaults("/api-cloud/auth/login", faultInt, u.appkey.login))
	u.controlRoutes(m)
	u.mux = m
}

// auth returns the member whose token the request carries, or answers the
// request with a refusal and returns nil.
func (u *Upstream) auth(w http.ResponseWriter, r *http.Request) *member {
	t := bearer(r)
	u.mu.RLock()
	m := u.tokens[t]
	expired := m != nil && m.expired
	u.mu.RUnlock()
	switch {
	case t == "" || m == nil:
		wkFail(w, msgNoToken)
		return nil
	case expired:
		wkFail(w, msgTokenExpired)
		return nil
	}
	return m
}

// online returns the online instance wID of member m, or answers the
// request with a refusal and returns nil.
func (u *Upstream) online(w http.ResponseWriter, m *member, wID string) (*instance, *account) {
	u.mu.RLock()
	in := u.instances[wID]
	u.mu.RUnlock()
	if in == nil || in.owner != m {
		wkFail(w, msgNoInstance)
		return nil, nil
	}
	in.mu.Lock()
	st, acct := in.state, in.acct
	in.mu.Unlock()
	if st != stateOnline {
		wkFail(w, msgOffline)
		return nil, nil
	}
	return in, acct
}

func (u *Upstream) memberLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Account  string `json:"account"`
		Password string `json:"password"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	u.mu.Lock()
	m := u.members[req.Account]
	if m == nil || m.Password != req.Password {
		u.mu.Unlock()
		wkFail(w, msgBadLogin)
		return
	}
	if m.token == "" || m.expired {
		delete(u.tokens, m.token)
		m.token, m.expired = randHex(16), false
		u.tokens[m.token] = m
	}
	token, status := m.token, m.Status
	u.mu.Unlock()
	if !u.saved(w) {
		return
	}
	u.log.Info("member login", "account", req.Account)
	wkOK(w, marshal(struct {
		CallbackURL   *string `json:"callbackUrl"`
		Status        int     `json:"status"`
		Authorization string  `json:"Authorization"`
	}{nil, status, token}))
}

func (u *Upstream) iPadLogin(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WcID       string `json:"wcId"`
		DeviceType string `json:"deviceType"`
		Proxy      int    `json:"proxy"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	switch m.Status {
	case 0:
	case 1:
		wkFail(w, msgFrozen)
		return
	default:
		wkFail(w, msgMemberExpired)
		return
	}
	in := &instance{
		wID: newWID(), owner: m, deviceType: req.DeviceType, created: u.clock.Now(),
		state: statePending, wcID: req.WcID, confirmed: make(chan struct{}),
	}
	u.mu.Lock()
	in.script = append([]LoginStep(nil), u.script...)
	u.instances[in.wID] = in
	u.mu.Unlock()
	if u.opts.AutoConfirm {
		in.confirm("")
	}
	if !u.saved(w) {
		return
	}
	u.log.Info("qr code issued", "wId", in.wID, "wcId", req.WcID, "auto_confirm", u.opts.AutoConfirm)
	wkOK(w, marshal(struct {
		WID       string `json:"wId"`
		QRCodeURL string `json:"qrCodeUrl"`
	}{in.wID, "http://" + r.Host + "/_sim/qr/" + in.wID}))
}

// confirm marks the instance's QR code as scanned, by WeChat account wcID
// ("" for the one it asked for, or a new one).
func (in *instance) confirm(wcID string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != statePending || in.isConfirmed {
		return false
	}
	in.isConfirmed, in.scanAs = true, wcID
	close(in.confirmed)
	return true
}

func (u *Upstream) getIPadLoginInfo(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID        string `json:"wId"`
		AutoCheck  bool   `json:"autoCheck"`
		VerifyCode string `json:"verifyCode"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	u.mu.RLock()
	in := u.instances[req.WID]
	u.mu.RUnlock()
	if in == nil || in.owner != m {
		wkFail(w, msgNoInstance)
		return
	}
	in.mu.Lock()
	st, confirmed, awaiting := in.state, in.confirmed, in.awaitingCode
	in.mu.Unlock()
	switch st {
	case stateOnline:
		wkOK(w, u.profile(in))
		return
	case stateOffline:
		wkFail(w, msgOffline)
		return
	}
	if awaiting {
		switch req.VerifyCode {
		case "":
			wkFail(w, msgVerifyCode)
			return
		case u.opts.VerifyCode:
			in.mu.Lock()
			in.awaitingCode = false
			in.mu.Unlock()
		default:
			wkFail(w, msgBadVerifyCode)
			return
		}
	}
	select {
	case <-confirmed:
	default:
		if !u.awaitScan(w, r, in, confirmed) {
			return
		}
	}
	in.mu.Lock()
	var step LoginStep
	if !awaiting && len(in.script) > 0 {
		step, in.script = in.script[0], in.script[1:]
	}
	if step == StepVerifyCode {
		in.awaitingCode = true
	}
	in.mu.Unlock()
	switch step {
	case StepSlider:
		wkOK(w, marshal(struct {
			URL string `json:"url"`
		}{"http://" + r.Host + "/_sim/captcha/index.html?uuid=" + in.wID}))
		return
	case StepVerifyCode:
		wkFail(w, msgVerifyCode)
		return
	}
	if !u.completeLogin(in) {
		wkFail(w, msgOffline)
		return
	}
	if !u.saved(w) {
		return
	}
	u.log.Info("logged in", "wId", in.wID, "wcId", in.wcIDNow())
	wkOK(w, u.profile(in))
}

// awaitScan parks a /getIPadLoginInfo until the scan is confirmed. It
// answers the request itself and returns false when the wait ends any other
// way: the long poll expired, the caller left, or the simulator closed.
func (u *Upstream) awaitScan(w http.ResponseWriter, r *http.Request, in *instance, confirmed <-chan struct{}) bool {
	select {
	case <-confirmed:
		return true
	case <-u.clock.After(u.opts.LongPoll):
		in.mu.Lock()
		if !in.isConfirmed && in.state == statePending {
			in.state = stateOffline
		}
		in.mu.Unlock()
		wkFail(w, msgQRExpired)
	case <-r.Context().Done():
	case <-u.done:
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("simulator shutting down\n"))
	}
	return false
}

func (in *instance) wcIDNow() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.wcID
}

// completeLogin puts a confirmed instance online as its WeChat account and
// takes the account's previous instance offline: one login per account.
func (u *Upstream) completeLogin(in *instance) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	switch in.state {
	case stateOnline:
		return true
	case stateOffline:
		return false
	}
	wcID := in.scanAs
	if wcID == "" {
		wcID = in.wcID
	}
	if wcID == "" {
		wcID = fmt.Sprintf("wxid_sim%06d", u.nextWcID.Add(1))
	}
	acct := u.accountLocked(wcID)
	acct.owner = in.owner
	u.takeOverLocked(acct, in.wID)
	in.state, in.wcID, in.acct = stateOnline, wcID, acct
	return true
}

// takeOverLocked makes wID the account's current instance and takes the
// previous one offline. u.mu must be held.
func (u *Upstream) takeOverLocked(acct *account, wID string) {
	if old := u.instances[acct.current]; old != nil && acct.current != wID {
		old.mu.Lock()
		old.state = stateOffline
		old.mu.Unlock()
	}
	acct.current = wID
}

// profile renders the logged-in profile of an instance, shaped like the
// documents' example.
func (u *Upstream) profile(in *instance) []byte {
	in.mu.Lock()
	wID, acct, dev := in.wID, in.acct, in.deviceType
	in.mu.Unlock()
	if dev == "" {
		dev = "ipad"
	}
	head := "http://wx.qlogo.cn/mmhead/ver_1/" + acct.wcID
	return marshal(struct {
		Country         string `json:"country"`
		WAccount        string `json:"wAccount"`
		DeviceType      string `json:"deviceType"`
		City            string `json:"city"`
		Signature       string `json:"signature"`
		NickName        string `json:"nickName"`
		Sex             int    `json:"sex"`
		HeadURL         string `json:"headUrl"`
		Type            int    `json:"type"`
		SmallHeadImgURL string `json:"smallHeadImgUrl"`
		WcID            string `json:"wcId"`
		WID             string `json:"wId"`
		MobilePhone     string `json:"mobilePhone"`
		Uin             int64  `json:"uin"`
		Status          int    `json:"status"`
		Username        string `json:"username"`
	}{
		Country: "CN", WAccount: acct.wcID, DeviceType: dev, Signature: "finderbot simulated account",
		NickName: acct.nickName, Sex: 1, HeadURL: head + "/0", Type: 2, SmallHeadImgURL: head + "/132",
		WcID: acct.wcID, WID: wID, MobilePhone: "13800138000", Uin: acct.uin, Status: 3, Username: acct.wcID,
	})
}

func (u *Upstream) secondLogin(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WcID string `json:"wcId"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	u.mu.Lock()
	acct := u.accounts[req.WcID]
	if acct == nil || acct.owner != m {
		u.mu.Unlock()
		wkFail(w, msgNoSecond)
		return
	}
	in := &instance{
		wID: newWID(), owner: m, created: u.clock.Now(), state: stateOnline,
		wcID: req.WcID, acct: acct, confirmed: make(chan struct{}), isConfirmed: true,
	}
	close(in.confirmed)
	u.instances[in.wID] = in
	u.takeOverLocked(acct, in.wID)
	u.mu.Unlock()
	if !u.saved(w) {
		return
	}
	u.log.Info("second login", "wId", in.wID, "wcId", req.WcID)
	wkOK(w, u.profile(in))
}

func (u *Upstream) isOnline(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID string `json:"wId"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	u.mu.RLock()
	in := u.instances[req.WID]
	u.mu.RUnlock()
	if in == nil || in.owner != m {
		wkFail(w, msgNoInstance)
		return
	}
	in.mu.Lock()
	st := in.state
	in.mu.Unlock()
	if st != stateOnline {
		wkFail(w, msgNotOnline)
		return
	}
	wkOK(w, nil)
}

// sessionFor returns the Finder session id of a conversation with
// userName, shaped like the real ones: a stranger's
// "fv1_<hex>@findermsgstranger" has session "<hex>@findermsg".
func sessionFor(userName, myUserName string) string {
	const stranger = "@findermsgstranger"
	if len(userName) > 4+len(stranger) && userName[:4] == "fv1_" && userName[len(userName)-len(stranger):] == stranger {
		return userName[4:len(userName)-len(stranger)] + "@findermsg"
	}
	h := sha256.Sum256([]byte(userName + "\x00" + myUserName))
	return hex.EncodeToString(h[:]) + "@findermsg"
}

func (u *Upstream) getSessionID(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID        string `json:"wId"`
		ToUserName string `json:"toUserName"`
		MyUserName string `json:"myUserName"`
		Type       int    `json:"type"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	if in, _ := u.online(w, m, req.WID); in == nil {
		return
	}
	if req.ToUserName == "" || req.MyUserName == "" {
		wkFail(w, "参数错误: toUserName和myUserName不能为空")
		return
	}
	wkOK(w, marshal(struct {
		SessionID string `json:"sessionId"`
	}{sessionFor(req.ToUserName, req.MyUserName)}))
}

// Sent is one message sent through /privateSend or /sendText, with every
// field of its request.
type Sent struct {
	// Endpoint is "/privateSend" or "/sendText".
	Endpoint string `json:"endpoint"`
	// WID is the sending instance and Account the wcId it is logged in as.
	WID     string `json:"wId"`
	Account string `json:"account"`
	// ToUserName, MyUserName and SessionID are /privateSend's fields.
	ToUserName string `json:"toUserName,omitempty"`
	MyUserName string `json:"myUserName,omitempty"`
	SessionID  string `json:"sessionId,omitempty"`
	// WcID is /sendText's receiver.
	WcID    string `json:"wcId,omitempty"`
	Content string `json:"content"`
	// NewMsgID is the id the simulator answered with.
	NewMsgID uint64    `json:"newMsgId,string"`
	Time     time.Time `json:"time"`
}

func (u *Upstream) recordSent(s Sent) {
	u.sentMu.Lock()
	u.sent = append(u.sent, s)
	close(u.sentSignal)
	u.sentSignal = make(chan struct{})
	u.sentMu.Unlock()
	u.log.Info("sent", "endpoint", s.Endpoint, "wId", s.WID, "content", s.Content)
}

func sentReceipt(id uint64, seq int64, now time.Time, wcID string) []byte {
	return []byte(`{"type":1,"msgId":` + strconv.FormatInt(seq, 10) +
		`,"newMsgId":` + strconv.FormatUint(id, 10) +
		`,"createTime":` + strconv.FormatInt(now.Unix(), 10) +
		`,"wcId":` + string(marshal(wcID)) + `}`)
}

func (u *Upstream) privateSend(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID        string `json:"wId"`
		ToUserName string `json:"toUserName"`
		MyUserName string `json:"myUserName"`
		SessionID  string `json:"sessionId"`
		Content    string `json:"content"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	in, acct := u.online(w, m, req.WID)
	if in == nil {
		return
	}
	for name, v := range map[string]string{"toUserName": req.ToUserName, "myUserName": req.MyUserName, "sessionId": req.SessionID, "content": req.Content} {
		if v == "" {
			wkFail(w, "参数错误: "+name+"不能为空")
			return
		}
	}
	now := u.clock.Now()
	id := u.newID()
	var seq int64
	if !u.opts.NoEcho {
		msgs := acct.add(u, Message{ID: id, Type: 1, Content: req.Content, From: req.MyUserName, To: req.ToUserName, Session: req.SessionID, FromSelf: true, Time: now})
		seq = msgs[0].Seq
	}
	u.recordSent(Sent{Endpoint: "/privateSend", WID: req.WID, Account: acct.wcID, ToUserName: req.ToUserName,
		MyUserName: req.MyUserName, SessionID: req.SessionID, Content: req.Content, NewMsgID: id, Time: now})
	if !u.saved(w) {
		return
	}
	wkOK(w, sentReceipt(id, seq, now, req.ToUserName))
}

func (u *Upstream) sendText(w http.ResponseWriter, r *http.Request) {
	m := u.auth(w, r)
	if m == nil {
		return
	}
	var req struct {
		WID     string `json:"wId"`
		WcID    string `json:"wcId"`
		Content string `json:"content"`
	}
	if !readJSON(w, r, &req, wkFail) {
		return
	}
	in, acct := u.online(w, m, req.WID)
	if in == nil {
		return
	}
	if req.WcID == "" || req.Content == "" {
		wkFail(w, "参数错误: wcId和content不能为空")
		return
	}
	now := u.clock.Now()
	id := u.newID()
	u.recordSent(Sent{Endpoint: "/sendText", WID: req.WID, Account: acct.wcID, WcID: req.WcID, Content: req.Content, NewMsgID: id, Time: now})
	if !u.saved(w) {
		return
	}
	wkOK(w, sentReceipt(id, int64(id%1e9), now, req.WcID))
}

// newID returns a fresh message id above 2^53.
func (u *Upstream) newID() uint64 { return u.nextID.Add(1) }
