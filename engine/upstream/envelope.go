package upstream

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// splitEnvelope finds code, message and the raw data value of a reply in
// one pass, without decoding data, so that a /syncFinder page is scanned
// once rather than once to skip it and again to decode it. It handles the
// shape the upstream sends: scalar members, then "data" as the last
// member. ok is false for anything else (data followed by more members,
// escaped keys, nested values before data), and the caller then takes the
// general path. When ok, data is everything between "data": and the
// closing brace; the caller's decode of it fails if data was not in fact
// the last member, since a value followed by more members is not one JSON
// value.
func splitEnvelope(body []byte) (code, msg string, data []byte, ok bool) {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", "", nil, false
	}
	end := len(body) - 1
	for end >= 0 && isWS(body[end]) {
		end--
	}
	if end <= i || body[end] != '}' {
		return "", "", nil, false
	}
	i++
	var codeSet bool
	for {
		i = skipWS(body, i)
		if i >= end || body[i] != '"' {
			return "", "", nil, false
		}
		j := bytes.IndexByte(body[i+1:end], '"')
		if j < 0 {
			return "", "", nil, false
		}
		key := body[i+1 : i+1+j]
		if !plain(key) {
			return "", "", nil, false
		}
		i = skipWS(body, i+j+2)
		if i >= end || body[i] != ':' {
			return "", "", nil, false
		}
		i = skipWS(body, i+1)
		if string(key) == "data" {
			if !codeSet {
				return "", "", nil, false
			}
			return code, msg, bytes.TrimRight(body[i:end], " \t\r\n"), true
		}
		val, n, isStr, good := scalar(body[i:end])
		if !good {
			return "", "", nil, false
		}
		i += n
		switch string(key) {
		case "code":
			if !isStr && !isNumber(val) {
				return "", "", nil, false
			}
			code, codeSet = val, true
		case "message":
			msg = val
		case "msg":
			if msg == "" {
				msg = val
			}
		}
		i = skipWS(body, i)
		if i >= end || body[i] != ',' {
			return "", "", nil, false
		}
		i++
	}
}

// scalar reads a string, number, true, false or null at the start of b and
// returns its text (unquoted for a string) and length.
func scalar(b []byte) (val string, n int, isStr, ok bool) {
	if len(b) == 0 {
		return "", 0, false, false
	}
	if b[0] == '"' {
		for k := 1; k < len(b); k++ {
			if b[k] < 0x20 {
				return "", 0, false, false
			}
			switch b[k] {
			case '\\':
				k++
			case '"':
				if !utf8.Valid(b[1:k]) {
					return "", 0, false, false
				}
				s, err := strconv.Unquote(string(b[:k+1]))
				if err != nil {
					// JSON escapes that Go's syntax lacks (\/) take the
					// general path.
					return "", 0, false, false
				}
				return s, k + 1, true, true
			}
		}
		return "", 0, false, false
	}
	k := 0
	for k < len(b) && b[k] != ',' && b[k] != '}' && !isWS(b[k]) {
		if b[k] == '{' || b[k] == '[' || b[k] == '"' {
			return "", 0, false, false
		}
		k++
	}
	if k == 0 || !json.Valid(b[:k]) {
		return "", 0, false, false
	}
	return string(b[:k]), k, false, true
}

// plain reports whether a key needs no unescaping: printable ASCII or
// valid UTF-8, no backslash, no control character.
func plain(key []byte) bool {
	for _, c := range key {
		if c < 0x20 || c == '\\' {
			return false
		}
	}
	return utf8.Valid(key)
}

func isNumber(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}
