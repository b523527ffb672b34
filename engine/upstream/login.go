package upstream

import (
	"bytes"
	"context"
	"errors"
)

// Device types accepted by /iPadLogin.
const (
	DeviceIPad = "ipad"
	DeviceMac  = "mac"
)

// IPadLoginRequest is the body of /iPadLogin, step 2 of a WeChat login.
type IPadLoginRequest struct {
	// WcID is "" on an account's first login and its saved wcId on every
	// later one (otherwise the upstream creates a new device each time,
	// which gets the account logged out).
	WcID string `json:"wcId"`
	// DeviceType is DeviceIPad or DeviceMac; "" lets the upstream choose.
	DeviceType string `json:"deviceType,omitempty"`
	// Proxy is the upstream's proxy region number (1 北京, 2 天津, 3 上海, …).
	Proxy int `json:"proxy"`
	// ProxyIP, ProxyUser and ProxyPassword name a custom long-lived proxy
	// ("host:port"); they override Proxy.
	ProxyIP       string `json:"proxyIp,omitempty"`
	ProxyUser     string `json:"proxyUser,omitempty"`
	ProxyPassword string `json:"proxyPassword,omitempty"`
}

// IPadLogin is the result of /iPadLogin.
type IPadLogin struct {
	// WID is the new login instance id; it changes on every login.
	WID string
	// QRCodeURL is the QR code the human scans with WeChat.
	QRCodeURL string
}

// IPadLogin asks for a login QR code: POST /iPadLogin. It returns at once;
// follow it with GetIPadLoginInfo.
func (c *Client) IPadLogin(ctx context.Context, token string, req IPadLoginRequest) (*IPadLogin, error) {
	const ep = "/iPadLogin"
	env, err := c.call(ctx, ep, token, req, false)
	if err != nil {
		return nil, err
	}
	var w struct {
		WID       flexString `json:"wId"`
		QRCodeURL flexString `json:"qrCodeUrl"`
	}
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	if w.WID.S == "" {
		return nil, &MalformedError{Endpoint: ep, Reason: "data.wId is missing"}
	}
	return &IPadLogin{WID: w.WID.S, QRCodeURL: w.QRCodeURL.S}, nil
}

// LoginInfoRequest is the body of /getIPadLoginInfo, step 3 of a login.
type LoginInfoRequest struct {
	// WID is the instance returned by IPadLogin.
	WID string `json:"wId"`
	// AutoCheck asks the upstream to verify automatically; the documents
	// advise false.
	AutoCheck bool `json:"autoCheck"`
	// VerifyCode is the code shown on the phone, sent after a
	// *VerifyCodeRequired outcome.
	VerifyCode string `json:"verifyCode,omitempty"`
}

// LoginOutcome is what GetIPadLoginInfo returns: *LoggedIn,
// *SliderRequired or *VerifyCodeRequired.
type LoginOutcome interface {
	loginOutcome()
}

// LoggedIn is the profile of a WeChat account whose login completed; the
// instance can now sync and send.
type LoggedIn struct {
	WcID            string // the account's permanent id; save it for later logins
	WID             string // the instance id
	NickName        string
	HeadURL         string
	SmallHeadImgURL string
	WAccount        string // the WeChat id shown on the phone (may change)
	DeviceType      string
	Uin             int64
	Sex             int
	MobilePhone     string
	Status          string // reserved by the upstream; "3" when logged in
	Country         string
	City            string
	Signature       string
	Type            int
	Username        string
}

// SliderRequired means the human must solve a slider captcha at URL, then
// GetIPadLoginInfo must be called again.
type SliderRequired struct {
	URL string
}

// VerifyCodeRequired means the phone shows a verify code that must be sent
// in LoginInfoRequest.VerifyCode on the next GetIPadLoginInfo call. Message
// is the upstream's text, for example "请在iPad上输入验证码".
type VerifyCodeRequired struct {
	Message string
}

func (*LoggedIn) loginOutcome()           {}
func (*SliderRequired) loginOutcome()     {}
func (*VerifyCodeRequired) loginOutcome() {}

var (
	_ LoginOutcome = (*LoggedIn)(nil)
	_ LoginOutcome = (*SliderRequired)(nil)
	_ LoginOutcome = (*VerifyCodeRequired)(nil)
)

type wireLoggedIn struct {
	WcID            flexString `json:"wcId"`
	WID             flexString `json:"wId"`
	NickName        flexString `json:"nickName"`
	HeadURL         flexString `json:"headUrl"`
	SmallHeadImgURL flexString `json:"smallHeadImgUrl"`
	WAccount        flexString `json:"wAccount"`
	DeviceType      flexString `json:"deviceType"`
	Uin             flexInt    `json:"uin"`
	Sex             flexInt    `json:"sex"`
	MobilePhone     flexString `json:"mobilePhone"`
	Status          flexString `json:"status"`
	Country         flexString `json:"country"`
	City            flexString `json:"city"`
	Signature       flexString `json:"signature"`
	Type            flexInt    `json:"type"`
	Username        flexString `json:"username"`
	URL             flexString `json:"url"`
}

// GetIPadLoginInfo waits for the login of instance req.WID to complete:
// POST /getIPadLoginInfo, a long poll the upstream may hold for up to 250 s.
// It is bounded by ctx and the long-poll timeout, never by the ordinary
// call timeout. The outcome is *LoggedIn, *SliderRequired or
// *VerifyCodeRequired; a scan that did not happen in time is an *Error.
func (c *Client) GetIPadLoginInfo(ctx context.Context, token string, req LoginInfoRequest) (LoginOutcome, error) {
	const ep = "/getIPadLoginInfo"
	env, err := c.call(ctx, ep, token, req, true)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && !e.Unauthorized && matchAny(e.Message, c.b.cfg.verifyCode) {
			return &VerifyCodeRequired{Message: e.Message}, nil
		}
		return nil, err
	}
	if !env.hasData() {
		if matchAny(env.text(), c.b.cfg.verifyCode) {
			return &VerifyCodeRequired{Message: env.text()}, nil
		}
		return nil, &MalformedError{Endpoint: ep, Reason: "data is null"}
	}
	var w wireLoggedIn
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	switch {
	case w.WcID.S != "":
		return &LoggedIn{
			WcID: w.WcID.S, WID: w.WID.S, NickName: w.NickName.S, HeadURL: w.HeadURL.S,
			SmallHeadImgURL: w.SmallHeadImgURL.S, WAccount: w.WAccount.S, DeviceType: w.DeviceType.S,
			Uin: int64(w.Uin), Sex: int(w.Sex), MobilePhone: w.MobilePhone.S, Status: w.Status.S,
			Country: w.Country.S, City: w.City.S, Signature: w.Signature.S, Type: int(w.Type),
			Username: w.Username.S,
		}, nil
	case w.URL.S != "":
		return &SliderRequired{URL: w.URL.S}, nil
	case matchAny(env.text(), c.b.cfg.verifyCode):
		return &VerifyCodeRequired{Message: env.text()}, nil
	}
	return nil, &MalformedError{Endpoint: ep, Reason: "data has neither wcId (logged in) nor url (slider)"}
}

// SecondLogin logs a known account in again without a QR code: POST
// /secondLogin {wcId}. The human confirms on the phone; the reply carries
// the new instance id. When it fails, fall back to IPadLogin with the wcId.
func (c *Client) SecondLogin(ctx context.Context, token, wcID string) (string, error) {
	const ep = "/secondLogin"
	body := struct {
		WcID string `json:"wcId"`
	}{wcID}
	env, err := c.call(ctx, ep, token, body, false)
	if err != nil {
		return "", err
	}
	if !env.hasData() {
		return "", &MalformedError{Endpoint: ep, Reason: "data is null"}
	}
	var s flexString
	if bytes.HasPrefix(bytes.TrimSpace(env.Data), []byte(`"`)) {
		if err := decodeData(ep, env, &s); err != nil {
			return "", err
		}
	} else {
		var w struct {
			WID flexString `json:"wId"`
		}
		if err := decodeData(ep, env, &w); err != nil {
			return "", err
		}
		s = w.WID
	}
	if s.S == "" {
		return "", &MalformedError{Endpoint: ep, Reason: "data.wId is missing"}
	}
	return s.S, nil
}

// IsOnline reports whether instance wID is logged in: POST /isOnline {wId}.
// Code 1000 is online and code 1001 offline; offline is (false, nil), not an
// error. A refused token is still an error (ErrUnauthorized).
func (c *Client) IsOnline(ctx context.Context, token, wID string) (bool, error) {
	const ep = "/isOnline"
	body := struct {
		WID string `json:"wId"`
	}{wID}
	env, err := c.call(ctx, ep, token, body, false)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == CodeFail && !e.Unauthorized {
			return false, nil
		}
		return false, err
	}
	// Some deployments answer 1000 with data false for an offline instance.
	if d := bytes.TrimSpace(env.Data); string(d) == "false" {
		return false, nil
	}
	return true, nil
}
