package upstream

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// callInt makes a call to one of the int-code APIs (the token API and the
// app-key API), whose replies are {"code": 0, "msg": "...", "data": ...}
// with 0 meaning success, and returns the envelope of a successful reply.
func (b *base) callInt(ctx context.Context, r request) (*envelope, error) {
	data, err := b.do(ctx, r)
	if err != nil {
		return nil, err
	}
	return b.intEnvelope(r.endpoint, data)
}

// intEnvelope decodes the reply body of an int-code API and returns the
// envelope of a successful reply, an *Error for a refusal, or a
// *MalformedError.
func (b *base) intEnvelope(endpoint string, data []byte) (*envelope, error) {
	env, err := decodeEnvelope(endpoint, data)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.Atoi(env.Code.S); err != nil {
		return nil, &MalformedError{Endpoint: endpoint, Reason: fmt.Sprintf("code %q is not an integer", env.Code.S)}
	}
	if env.Code.S != "0" {
		msg := env.text()
		return nil, &Error{
			Endpoint: endpoint, Code: env.Code.S, Message: msg,
			Unauthorized: env.Code.S == "401" || env.Code.S == "403" || matchAny(msg, b.cfg.auth),
		}
	}
	return env, nil
}

// China Standard Time, for timestamps the upstream sends without a zone.
var chinaTime = time.FixedZone("CST", 8*60*60)

// parseTime reads the upstream's date-times: RFC 3339, "2006-01-02
// 15:04:05" and "2006-01-02T15:04:05" (taken as China Standard Time), or
// Unix seconds or milliseconds. "" is the zero time.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05.000"} {
		if t, err := time.ParseInLocation(layout, s, chinaTime); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		if n > 1e12 {
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("unrecognised date-time %q", s)
}
