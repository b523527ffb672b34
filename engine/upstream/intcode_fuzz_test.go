package upstream

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeIntReplies feeds arbitrary bodies to the decoders of the token
// and app-key APIs (login, refresh, login status, app-key login). Every
// body is accepted with its required fields present, or refused with an
// *Error or a *MalformedError naming the endpoint; nothing panics.
func FuzzDecodeIntReplies(f *testing.F) {
	f.Add([]byte(`{"code":0,"msg":"","data":{"accessToken":{"expire":"2026-11-21 10:00:00","value":"a"},"refreshToken":{"expire":"1763690400000","value":"r"},"userInfo":{"avatarUrl":"","companyType":1,"id":"42","mobile":"13800000000","nickName":"小明","realName":"","userName":"u"}}}`))
	f.Add([]byte(`{"code":0,"msg":"","data":{"expire":"2026-11-21T10:00:00+08:00","value":"v"}}`))
	f.Add([]byte(`{"code":"0","msg":"","data":{"isLogin":false,"lastLoginTime":"2026-11-20 09:00:00"}}`))
	f.Add([]byte(`{"code":0,"msg":"ok","data":{"token":"t-1"}}`))
	f.Add([]byte(`{"code":401,"msg":"token过期","data":null}`))
	f.Add([]byte(`{"code":"ok","msg":"","data":null}`))
	f.Add([]byte(`{"code":0,"msg":"","data":{"expire":"next tuesday","value":"v"}}`))
	b, err := newBase("http://127.0.0.1:1", "", nil)
	if err != nil {
		f.Fatal(err)
	}
	eps := []string{"/auth/mobile/login", "/app/auth/token/refresh", "/wx/pc/check-login-status", "/api-cloud/auth/login"}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range eps {
			env, err := b.intEnvelope(ep, body)
			if err == nil {
				switch ep {
				case eps[0]:
					var ml *MobileLogin
					if ml, err = decodeMobileLogin(env); err == nil && (ml.AccessToken.Value == "" || ml.RefreshToken.Value == "") {
						t.Fatalf("login accepted without tokens: %+v", ml)
					}
				case eps[1]:
					var tok *Token
					if tok, err = decodeRefresh(env); err == nil && tok.Value == "" {
						t.Fatalf("refresh accepted without a token: %+v", tok)
					}
				case eps[2]:
					var st *LoginStatus
					if st, err = decodeLoginStatus(env); err == nil && st == nil {
						t.Fatal("status accepted as nil")
					}
				case eps[3]:
					var tok string
					if tok, err = decodeAppKeyLogin(env); err == nil && tok == "" {
						t.Fatal("app-key login accepted without a token")
					}
				}
			}
			if err == nil {
				continue
			}
			var ue *Error
			var me *MalformedError
			switch {
			case errors.As(err, &ue):
				if ue.Endpoint != ep || ue.Code == "0" {
					t.Fatalf("refusal %+v for %s", ue, ep)
				}
			case errors.As(err, &me):
				if me.Endpoint != ep || !strings.Contains(err.Error(), ep) {
					t.Fatalf("malformed error %q does not name %s", err, ep)
				}
			default:
				t.Fatalf("%s: error %T %v is neither *Error nor *MalformedError", ep, err, err)
			}
		}
	})
}
