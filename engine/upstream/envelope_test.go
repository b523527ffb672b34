package upstream

import (
	"reflect"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream/sim"
)

func TestSplitEnvelope(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body      string
		code, msg string
		data      string
		ok        bool
	}{
		"documented":        {body: `{"code":"1000","message":"处理成功","data":{"a":1}}`, code: "1000", msg: "处理成功", data: `{"a":1}`, ok: true},
		"failure order":     {body: `{"message":"失败","code":"1001","data":null}`, code: "1001", msg: "失败", data: `null`, ok: true},
		"spaced":            {body: " {\n \"code\" : 0 ,\n \"msg\" : \"ok\" ,\n \"data\" : { \"token\" : \"x\" } \n}\n", code: "0", msg: "ok", data: `{ "token" : "x" }`, ok: true},
		"escaped message":   {body: `{"code":"1001","message":"a\"b\u4e2d","data":null}`, code: "1001", msg: `a"b中`, data: "null", ok: true},
		"data first":        {body: `{"data":{},"code":"1000"}`},
		"no code":           {body: `{"message":"x","data":{}}`},
		"nested before":     {body: `{"code":"1000","extra":{"a":1},"data":{}}`},
		"not an object":     {body: `[1]`},
		"unterminated":      {body: `{"code":"1000","data":{}`, code: "1000", data: `{`, ok: true}, // the decode of data fails
		"object code":       {body: `{"code":{},"data":{}}`},
		"slash escape bail": {body: `{"code":"1000","message":"a\/b","data":{}}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, msg, data, ok := splitEnvelope([]byte(tc.body))
			if ok != tc.ok || (ok && (code != tc.code || msg != tc.msg || string(data) != tc.data)) {
				t.Fatalf("splitEnvelope = %q, %q, %q, %v; want %q, %q, %q, %v", code, msg, data, ok, tc.code, tc.msg, tc.data, tc.ok)
			}
		})
	}
}

// generalSync decodes a /syncFinder reply without the fast path.
func generalSync(body []byte) (*Page, error) {
	env, err := decodeEnvelope(syncFinderEndpoint, body)
	if err != nil {
		return nil, err
	}
	if env.Code.S != CodeOK || !env.hasData() {
		return nil, &MalformedError{Endpoint: syncFinderEndpoint, Reason: "refused or null"}
	}
	return DecodePage(env.Data)
}

// FuzzDecodeSync checks that the reply decoder never panics and that its
// fast path never accepts a reply the general path rejects or reads
// differently.
func FuzzDecodeSync(f *testing.F) {
	f.Add(sim.SeedPage())
	f.Add([]byte(`{"code":"1000","message":"处理成功","data":{"list":[],"keyBuff":"k"}}`))
	f.Add([]byte(`{"code":"1000","message":"处理成功","data":{"list":[],"keyBuff":"k"},"code":"1001"}`))
	f.Add([]byte(`{"message":"失败","code":"1001","data":null}`))
	f.Add([]byte(`{"code":1000,"msg":"","data":{"list":[{"content":{"msg":{"NewMsgId":18446744073709551615}}}],"keyBuff":""}}`))
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := c.decodeSync(body)
		if err != nil {
			return
		}
		want, werr := generalSync(body)
		if werr != nil {
			t.Fatalf("fast path accepted what the general path rejects: %v", werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast path = %+v, general path = %+v", got, want)
		}
	})
}
