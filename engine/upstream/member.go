package upstream

import (
	"context"
	"fmt"
)

// MemberStatus is the state of a wkteam member (platform) account.
type MemberStatus int

// Member account states, as sent in data.status of /member/login.
const (
	MemberNormal  MemberStatus = 0
	MemberFrozen  MemberStatus = 1
	MemberExpired MemberStatus = 2
)

// String returns "normal", "frozen", "expired" or "status N".
func (s MemberStatus) String() string {
	switch s {
	case MemberNormal:
		return "normal"
	case MemberFrozen:
		return "frozen"
	case MemberExpired:
		return "expired"
	}
	return fmt.Sprintf("status %d", int(s))
}

// Member is the result of /member/login.
type Member struct {
	// Token is data.Authorization: the long-lived token every other call
	// sends in its Authorization header.
	Token string
	// Status is the member account's state; only MemberNormal can log
	// WeChat accounts in.
	Status MemberStatus
	// CallbackURL is the message callback registered for the member, if any.
	CallbackURL string
}

type wireMember struct {
	Authorization flexString `json:"Authorization"`
	Status        flexInt    `json:"status"`
	CallbackURL   flexString `json:"callbackUrl"`
}

// MemberLogin logs the member (platform) account in:
// POST /member/login {account, password}. A frozen or expired member is not
// an error here; check Member.Status.
func (c *Client) MemberLogin(ctx context.Context, account, password string) (*Member, error) {
	const ep = "/member/login"
	body := struct {
		Account  string `json:"account"`
		Password string `json:"password"`
	}{account, password}
	env, err := c.call(ctx, ep, "", body, false)
	if err != nil {
		return nil, err
	}
	var w wireMember
	if err := decodeData(ep, env, &w); err != nil {
		return nil, err
	}
	if w.Authorization.S == "" {
		return nil, &MalformedError{Endpoint: ep, Reason: "data.Authorization is missing"}
	}
	return &Member{Token: w.Authorization.S, Status: MemberStatus(w.Status), CallbackURL: w.CallbackURL.S}, nil
}
