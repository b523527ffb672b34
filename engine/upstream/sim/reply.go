package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxRequestBody bounds request bodies; the largest real request is a text
// message.
const maxRequestBody = 1 << 20

// Wkteam reply codes and messages, as the documents show them.
const (
	codeOK    = "1000"
	codeFail  = "1001"
	msgOK     = "处理成功"
	msgFail   = "失败"
	jsonCType = "application/json;charset=UTF-8"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeBody writes a complete reply with its length.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// wkReply writes a wkteam envelope; data is raw JSON, nil meaning null.
func wkReply(w http.ResponseWriter, code, message string, data []byte) {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	b.WriteString(`{"code":"`)
	b.WriteString(code)
	b.WriteString(`","message":`)
	writeJSONString(b, message)
	b.WriteString(`,"data":`)
	if data == nil {
		b.WriteString("null")
	} else {
		b.Write(data)
	}
	b.WriteByte('}')
	writeBody(w, http.StatusOK, jsonCType, b.Bytes())
	bufPool.Put(b)
}

func wkOK(w http.ResponseWriter, data []byte) { wkReply(w, codeOK, msgOK, data) }

func wkFail(w http.ResponseWriter, message string) { wkReply(w, codeFail, message, nil) }

// intReply writes the envelope of the token and app-key APIs, whose code is
// an int: {"code":0,"msg":"ok","data":...}.
func intReply(w http.ResponseWriter, code int, msg string, data []byte) {
	var b bytes.Buffer
	b.WriteString(`{"code":`)
	b.WriteString(strconv.Itoa(code))
	b.WriteString(`,"msg":`)
	writeJSONString(&b, msg)
	b.WriteString(`,"data":`)
	if data == nil {
		b.WriteString("null")
	} else {
		b.Write(data)
	}
	b.WriteByte('}')
	writeBody(w, http.StatusOK, jsonCType, b.Bytes())
}

// writeJSONString writes s as a JSON string without HTML escaping, as the
// upstream does.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// marshal encodes v as JSON without HTML escaping.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("sim: marshal %T: %v", v, err))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// readJSON decodes a JSON request body into v. It answers the request
// itself and returns false when the body is not acceptable: 415 without a
// JSON content type (the documents insist on it), a refusal for a body
// that does not decode.
func readJSON(w http.ResponseWriter, r *http.Request, v any, fail func(http.ResponseWriter, string)) bool {
	if !isJSON(r) {
		unsupportedType(w)
		return false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		fail(w, "参数错误: "+err.Error())
		return false
	}
	if len(data) > maxRequestBody {
		fail(w, "参数错误: body too large")
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		fail(w, "参数错误: "+err.Error())
		return false
	}
	return true
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

func unsupportedType(w http.ResponseWriter) {
	writeBody(w, http.StatusUnsupportedMediaType, "text/plain; charset=utf-8",
		[]byte("Content-Type must be application/json (curl: -H 'Content-Type: application/json')\n"))
}

// bearer returns the token of an Authorization header, with or without a
// "Bearer " prefix.
func bearer(r *http.Request) string {
	t := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
		t = strings.TrimSpace(t[7:])
	}
	return t
}

// saved saves the simulator's state after a change and reports whether it
// may answer: a change it could not save is answered with a 500, as the
// client must not believe what would not survive a restart.
func (u *Upstream) saved(w http.ResponseWriter) bool {
	err := u.save()
	if err == nil {
		return true
	}
	u.log.Error("cannot save the simulator state", "err", err)
	writeBody(w, http.StatusInternalServerError, "text/plain; charset=utf-8", []byte(err.Error()+"\n"))
	return false
}
