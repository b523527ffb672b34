package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestPrivateSendImgShape: the image reply goes to the configured path
// with the configured field names, and only those.
func TestPrivateSendImgShape(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		shape    *ImageSend
		path     string
		wantBody map[string]string
	}{
		"the catalog's shape": {
			path:     "/privateSendImg",
			wantBody: map[string]string{"wId": "w1", "toUserName": "fv1_a", "sessionId": "a@findermsg", "imgUrl": "https://x/p.png"},
		},
		"renamed fields, myUserName added": {
			shape:    &ImageSend{Endpoint: "/sendFinderImage", WID: "wid", ToUserName: "to", MyUserName: "me", SessionID: "sid", ImgURL: "url"},
			path:     "/sendFinderImage",
			wantBody: map[string]string{"wid": "w1", "to": "fv1_a", "me": "v2_me@finder", "sid": "a@findermsg", "url": "https://x/p.png"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var gotPath string
			var gotBody map[string]string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.Path
				b, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(b, &gotBody)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"code":"1000","message":"处理成功","data":{"newMsgId":9007199254740993,"msgId":1,"createTime":1}}`)
			}))
			defer srv.Close()
			opts := []Option{}
			if tc.shape != nil {
				opts = append(opts, WithImageSend(*tc.shape))
			}
			c, err := New(srv.URL, opts...)
			if err != nil {
				t.Fatal(err)
			}
			sent, err := c.PrivateSendImg(context.Background(), "tok", PrivateSendImgRequest{
				WID: "w1", ToUserName: "fv1_a", MyUserName: "v2_me@finder", SessionID: "a@findermsg", ImgURL: "https://x/p.png"})
			if err != nil {
				t.Fatal(err)
			}
			if sent.NewMsgID != 9007199254740993 {
				t.Errorf("newMsgId %d", sent.NewMsgID)
			}
			if gotPath != tc.path || !reflect.DeepEqual(gotBody, tc.wantBody) {
				t.Errorf("sent %s %v, want %s %v", gotPath, gotBody, tc.path, tc.wantBody)
			}
		})
	}
}

// TestImageSendRefusesAnIncompleteShape: a shape without a field for the
// URL is refused when the client is made, not when a reply is due.
func TestImageSendRefusesAnIncompleteShape(t *testing.T) {
	t.Parallel()
	_, err := New("http://127.0.0.1:1", WithImageSend(ImageSend{Endpoint: "/privateSendImg", WID: "wId", ToUserName: "toUserName"}))
	if err == nil || err.Error() != "upstream: WithImageSend: the field name img_url must not be empty" {
		t.Fatalf("err = %v", err)
	}
}
