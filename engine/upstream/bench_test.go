package upstream

import (
	"context"
	stdjson "encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/sdk"
)

// stdReply mirrors a whole /syncFinder reply for the encoding/json baseline.
type stdReply struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Data    *struct {
		List []struct {
			Content struct {
				Msg struct {
					Content      struct{ String string } `json:"Content"`
					CreateTime   int64                   `json:"CreateTime"`
					MsgSeq       int64                   `json:"MsgSeq"`
					NewMsgID     uint64                  `json:"NewMsgId"`
					FromUserName struct{ String string } `json:"FromUserName"`
					ToUserName   struct{ String string } `json:"ToUserName"`
					MsgType      int                     `json:"MsgType"`
					MsgSource    string                  `json:"MsgSource"`
				} `json:"msg"`
				IsSender     int    `json:"isSender"`
				MsgSessionID string `json:"msgSessionId"`
				Seq          int64  `json:"seq"`
			} `json:"content"`
		} `json:"list"`
		KeyBuff string `json:"keyBuff"`
	} `json:"data"`
}

// decodeSyncStd is the same decode done with encoding/json: envelope, page,
// and the same Message values (XML parsing included).
func decodeSyncStd(body []byte) (*Page, error) {
	var r stdReply
	if err := stdjson.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.Code != CodeOK || r.Data == nil {
		return nil, fmt.Errorf("refused")
	}
	p := &Page{KeyBuff: r.Data.KeyBuff, Messages: make([]sdk.Message, len(r.Data.List))}
	for i := range r.Data.List {
		c := &r.Data.List[i].Content
		m := &p.Messages[i]
		*m = sdk.Message{ID: c.Msg.NewMsgID, Seq: c.Seq, Type: sdk.TypeOf(c.Msg.MsgType), RawType: c.Msg.MsgType,
			Content: c.Msg.Content.String, From: c.Msg.FromUserName.String, To: c.Msg.ToUserName.String,
			Session: c.MsgSessionID, FromSelf: c.IsSender == 1, Time: time.Unix(c.Msg.CreateTime, 0).UTC(), Source: c.Msg.MsgSource}
		var err error
		switch m.Type {
		case sdk.TypeText:
			m.Text = m.Content
		case sdk.TypeSystem:
			m.Sys, err = sdk.ParseSysMsg(m.Content)
		case sdk.TypeImage:
			m.Image, err = sdk.ParseImage(m.Content)
		}
		if err != nil {
			m.ParseError = err.Error()
		}
	}
	return p, nil
}

// textReply returns a /syncFinder reply of n text messages.
func textReply(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"code":"1000","message":"处理成功","data":{"list":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"syncKeyType":1,"itemType":1,"subType":0,"content":{"msg":{"Status":3,"ImgBuf":{"iLen":0},"Content":{"string":"你好,请问这个商品还有货吗?第%d条"},"CreateTime":1692186142,"MsgSeq":%d,"NewMsgId":%d,"FromUserName":{"string":"fv1_cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsgstranger"},"ToUserName":{"string":"v2_060000231003b20faec8c6e18f10c7d6c903ec3db0776955d3d97c6b329d6aa58693bcdb7ad1@finder"},"MsgType":1,"ImgStatus":1,"MsgId":%d,"MsgSource":""},"extinfo":"CAIQAw==","isSender":0,"msgSessionId":"cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsg","seq":%d}}`,
			i, 2000+i, uint64(9008843899058959155)-uint64(i), 2000+i, 2000+i)
	}
	b.WriteString(`],"keyBuff":"CgUIARDaCQoECAIQAAoECAMQAAoECAQQAAoECAUQAAoECAYQAAoECAcQAAoECAgQAAoECAkQABAA"}}`)
	return []byte(b.String())
}

func TestDecodeSyncMatchesBaseline(t *testing.T) {
	t.Parallel()
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"seed": sim.SeedPage(), "text100": textReply(100)} {
		got, err := c.decodeSync(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := decodeSyncStd(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got.Messages) != len(want.Messages) || got.KeyBuff != want.KeyBuff {
			t.Fatalf("%s: %d messages %q, baseline %d %q", name, len(got.Messages), got.KeyBuff, len(want.Messages), want.KeyBuff)
		}
		for i := range got.Messages {
			g, w := got.Messages[i], want.Messages[i]
			if g.ID != w.ID || g.Text != w.Text || g.Session != w.Session || g.Type != w.Type || g.FromSelf != w.FromSelf {
				t.Fatalf("%s: message %d = %+v, baseline %+v", name, i, g, w)
			}
		}
	}
}

// BenchmarkSyncFinderDecode measures the client's decode of a whole
// /syncFinder reply (envelope and page into sdk.Message values) beside the
// same decode with encoding/json.
func BenchmarkSyncFinderDecode(b *testing.B) {
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		b.Fatal(err)
	}
	bodies := map[string][]byte{"seed": sim.SeedPage(), "text100": textReply(100)}
	decoders := map[string]func([]byte) (*Page, error){"finderbot": c.decodeSync, "encoding_json": decodeSyncStd}
	for _, page := range []string{"seed", "text100"} {
		for _, dec := range []string{"finderbot", "encoding_json"} {
			body, decode := bodies[page], decoders[dec]
			b.Run(page+"/"+dec, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := decode(body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSyncFinderIdle polls an empty /syncFinder over loopback, as
// each idle account does every second: its B/op is the garbage a daemon of
// ten thousand accounts makes ten thousand times a second (the test
// server's share included, the same whatever the client does).
func BenchmarkSyncFinderIdle(b *testing.B) {
	reply := []byte(`{"code":"` + CodeOK + `","message":"成功","data":{"list":[],"keyBuff":"k1"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Write(reply)
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithHTTPClient(NewHTTPClient(NewTransport())))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if p, err := c.SyncFinder(ctx, "token", "wid", "k1"); err != nil || p.KeyBuff != "k1" {
			b.Fatalf("%+v, %v", p, err)
		}
	}
}
