package upstream

import (
	"bytes"
	"fmt"
	"strconv"

	json "github.com/goccy/go-json"
)

// flexString decodes a JSON string or number into its text. The documents
// disagree with their own examples on some types (status is "string" in the
// table and 3 in the example), so fields of doubtful type accept both.
type flexString struct {
	S   string
	Set bool
}

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = flexString{}
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString{S: s, Set: true}
		return nil
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString{S: string(b), Set: true}
		return nil
	case string(b) == "true" || string(b) == "false":
		*f = flexString{S: string(b), Set: true}
		return nil
	}
	return fmt.Errorf("want a string or a number, got %.20s", b)
}

// flexUint decodes an unsigned integer sent as a JSON number or string,
// exactly: message ids exceed 2^53 and must never pass through a float.
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if !s.Set || s.S == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseUint(s.S, 10, 64)
	if err != nil {
		return fmt.Errorf("want an unsigned integer, got %q", s.S)
	}
	*f = flexUint(n)
	return nil
}

// flexInt decodes a signed integer sent as a JSON number or string.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if !s.Set || s.S == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s.S, 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %q", s.S)
	}
	*f = flexInt(n)
	return nil
}

// envelope is the reply of every call of the three APIs:
// {"code": "1000" | 0, "message" | "msg": "...", "data": ...}.
type envelope struct {
	Code    flexString      `json:"code"`
	Message string          `json:"message"`
	Msg     string          `json:"msg"`
	Data    json.RawMessage `json:"data"`
}

func (e *envelope) text() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Msg
}

func (e *envelope) hasData() bool {
	d := bytes.TrimSpace(e.Data)
	return len(d) > 0 && string(d) != "null"
}

// decodeEnvelope parses a reply body into its envelope.
func decodeEnvelope(endpoint string, body []byte) (*envelope, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &MalformedError{Endpoint: endpoint, Reason: "not a JSON reply envelope", Err: err}
	}
	if !env.Code.Set {
		return nil, &MalformedError{Endpoint: endpoint, Reason: "code is missing"}
	}
	return &env, nil
}

// decodeData decodes the envelope's data into v, which must not be null.
func decodeData(endpoint string, env *envelope, v any) error {
	if !env.hasData() {
		return &MalformedError{Endpoint: endpoint, Reason: "data is null"}
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return &MalformedError{Endpoint: endpoint, Reason: "data", Err: err}
	}
	return nil
}
