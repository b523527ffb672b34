package session

import "time"

// DefaultQRLifetime is how long a login QR code can be scanned: as long as
// the upstream holds /getIPadLoginInfo waiting for the scan, after which the
// login fails and the next attempt draws a new code.
const DefaultQRLifetime = 250 * time.Second

// LoginState is what a person needs to see of a session's login to act on
// it from a browser: the facts `finderbot login` shows at a terminal. The
// session publishes it; nothing reads a session's internals to build it.
type LoginState struct {
	// Name and Kind name the session (KindWkteam for an account).
	Name string `json:"name"`
	Kind string `json:"kind"`
	// State and Detail are as State returns them.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	// QR is the content of the code to scan with WeChat, and QRExpires
	// when the upstream stops waiting for the scan, while State is
	// StateNeedsScan.
	QR        string    `json:"qr,omitempty"`
	QRExpires time.Time `json:"qr_expires,omitzero"`
	// SliderURL is the slider check WeChat asks a person to solve, while
	// State is StateSlider.
	SliderURL string `json:"slider_url,omitempty"`
	// AwaitsVerifyCode is set while an account waits for the code its
	// phone shows, AwaitsSMSCode while a token session waits for an SMS
	// code; SubmitCode takes either.
	AwaitsVerifyCode bool `json:"awaits_verify_code,omitempty"`
	AwaitsSMSCode    bool `json:"awaits_sms_code,omitempty"`
	// Online is set while the session can be used.
	Online bool `json:"online"`
}

// loginFacts are the parts of a LoginState that belong to one state: a
// keeper sets them with the state, so that a change of state clears them.
type loginFacts struct {
	qr        string
	qrExpires time.Time
	slider    string
}

// wakeUp asks a loop waiting on wake to stop waiting, without blocking.
func wakeUp(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// drain forgets a wake-up asked for before the wait it was meant for:
// entering a backoff calls it, so that only a request made during the
// backoff cuts it short.
func drain(wake chan struct{}) {
	select {
	case <-wake:
	default:
	}
}
