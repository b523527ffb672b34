package upstream

import (
	"bytes"
	stdjson "encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files")

// seedData returns the "data" object of the seed /syncFinder reply.
func seedData(tb testing.TB) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("sim", "seed_page.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var env struct {
		Data stdjson.RawMessage `json:"data"`
	}
	if err := stdjson.Unmarshal(raw, &env); err != nil {
		tb.Fatal(err)
	}
	return env.Data
}

func TestDecodeSeedPage(t *testing.T) {
	t.Parallel()
	p, err := DecodePage(seedData(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.Messages), 19; got != want {
		t.Fatalf("messages = %d, want %d", got, want)
	}
	counts := map[string]int{}
	for _, m := range p.Messages {
		counts[m.Type]++
	}
	if counts[sdk.TypeText] != 6 || counts[sdk.TypeImage] != 2 || counts[sdk.TypeSystem] != 11 {
		t.Errorf("types = %v, want 6 text, 2 image, 11 system", counts)
	}
	if want := "CgUIARDaCQoECAIQAAoECAMQAAoECAQQAAoECAUQAAoECAYQAAoECAcQAAoECAgQAAoECAkQABAA"; p.KeyBuff != want {
		t.Errorf("keyBuff = %q, want %q", p.KeyBuff, want)
	}

	hello := find(t, p, 1767797523284146072)
	if hello.Text != "哈喽" || hello.Type != sdk.TypeText || hello.FromSelf {
		t.Errorf("哈喽 message decoded as %+v", hello)
	}
	if want := "fv1_cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsgstranger"; hello.From != want {
		t.Errorf("From = %q", hello.From)
	}
	if want := "v2_060000231003b20faec8c6e18f10c7d6c903ec3db0776955d3d97c6b329d6aa58693bcdb7ad1@finder"; hello.To != want {
		t.Errorf("To = %q", hello.To)
	}
	if want := "cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsg"; hello.Session != want {
		t.Errorf("Session = %q", hello.Session)
	}
	if hello.Seq != 1192 || !hello.Time.Equal(time.Unix(1692186142, 0)) {
		t.Errorf("Seq/Time = %d/%v", hello.Seq, hello.Time)
	}

	// 9008843899058959155 is past 2^53: a float64 would round it.
	img := find(t, p, 9008843899058959155)
	if img.Type != sdk.TypeImage || img.Image == nil || !img.FromSelf {
		t.Fatalf("image message decoded as %+v", img)
	}
	if img.Image.AESKey != "8fb3dc8e7dc7c9964273629fd2694392" || img.Image.Length != 113874 ||
		img.Image.HDLength != 52127 || img.Image.ThumbWidth != 80 || img.Image.ThumbHeight != 120 ||
		img.Image.MD5 != "ed91cf58fb15a933ea9660e8d60b4d53" {
		t.Errorf("image = %+v", img.Image)
	}
	if img.Text != "" {
		t.Errorf("image Text = %q, want empty", img.Text)
	}

	closeNotice := find(t, p, 6876224516571785856)
	if closeNotice.Sys == nil || closeNotice.Sys.Type != "finderliveclosenotifymsg" ||
		closeNotice.Sys.Field("live_id") != "2042557163204371840" ||
		closeNotice.Sys.Field("object_id") != "14192909587060689023" {
		t.Errorf("live close notice = %+v", closeNotice.Sys)
	}
	fn := find(t, p, 3876235366388279544)
	if fn.Sys == nil || fn.Sys.Type != "functionmsg" || fn.Sys.Field("cmdid") != "6407" {
		t.Errorf("functionmsg = %+v", fn.Sys)
	}
	for _, m := range p.Messages {
		if m.ParseError != "" {
			t.Errorf("message %d: parse error %s", m.ID, m.ParseError)
		}
	}
	golden(t, "seed_page.golden.json", p)
}

func find(t *testing.T, p *Page, id uint64) *sdk.Message {
	t.Helper()
	for i := range p.Messages {
		if p.Messages[i].ID == id {
			return &p.Messages[i]
		}
	}
	t.Fatalf("no message with id %d", id)
	return nil
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := stdjson.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the decoded page; run go test ./engine/upstream -run TestDecodeSeedPage -update and review the diff", path)
	}
}

func TestDecodePageErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want string
	}{
		"not json":                  {`{"list": [`, "upstream: decode sync page"},
		"not an object":             {`[]`, "upstream: decode sync page"},
		"no keyBuff":                {`{"list": []}`, "upstream: decode sync page: keyBuff is missing"},
		"keyBuff not a string":      {`{"list": [], "keyBuff": 3}`, "upstream: decode sync page"},
		"list not array":            {`{"list": 3, "keyBuff": ""}`, "upstream: decode sync page"},
		"item not json":             {`{"list": [{"content": x}], "keyBuff": ""}`, "upstream: decode sync page"},
		"too many items":            {`{"list": [` + strings.Repeat(`{},`, MaxPageItems) + `{}], "keyBuff": ""}`, "10001 items, more than the limit of 10000"},
		"bad item and no keyBuff":   {`{"list": [{"content":{"msg":{"NewMsgId":"x"}}}]}`, "upstream: decode sync page: keyBuff is missing"},
		"bad item and too many":     {`{"list": [` + strings.Repeat(`"x",`, MaxPageItems) + `"x"], "keyBuff": ""}`, "10001 items, more than the limit of 10000"},
		"id 0 and keyBuff not text": {`{"list": [{}], "keyBuff": []}`, "upstream: decode sync page"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodePage([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodePageKeepsUnknownAndBadXML(t *testing.T) {
	t.Parallel()
	in := `{"list":[
	 {"content":{"msg":{"NewMsgId":18446744073709551615,"MsgType":9999,"Content":{"string":"?"}},"seq":7}},
	 {"content":{"msg":{"NewMsgId":2,"MsgType":10002,"Content":{"string":"<sysmsg type=\"x\"><x><a>1</b></x></sysmsg>"}}}},
	 {"content":{"msg":{"NewMsgId":3,"MsgType":3,"Content":{"string":"not xml"}}}}
	],"keyBuff":"a+b/c=="}`
	p, err := DecodePage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 3 || p.KeyBuff != "a+b/c==" {
		t.Fatalf("page = %+v", p)
	}
	if m := p.Messages[0]; m.ID != 18446744073709551615 || m.Type != sdk.TypeUnknown || m.RawType != 9999 || m.Seq != 7 || m.Content != "?" {
		t.Errorf("unknown message = %+v", m)
	}
	if m := p.Messages[1]; m.Sys != nil || !strings.Contains(m.ParseError, "does not match") {
		t.Errorf("bad sysmsg = %+v", m)
	}
	if m := p.Messages[2]; m.Image != nil || m.ParseError == "" {
		t.Errorf("bad image = %+v", m)
	}
}

func TestDecodePageSkipsBadItems(t *testing.T) {
	t.Parallel()
	const (
		good1 = `{"content":{"msg":{"NewMsgId":9007199254740993,"MsgType":1,"Content":{"string":"一"}},"seq":1}}`
		good2 = `{"content":{"msg":{"NewMsgId":18446744073709551615,"MsgType":1,"Content":{"string":"二"}},"seq":2}}`
	)
	tests := map[string]struct {
		item   string
		reason string // a substring of SkippedItem.Reason
	}{
		"missing id":          {`{"content":{"msg":{"MsgType":1,"Content":{"string":"x"}}}}`, "NewMsgId is missing"},
		"no msg":              {`{"content":{"isSender":0}}`, "NewMsgId is missing"},
		"empty object":        {`{}`, "NewMsgId is missing"},
		"id 0":                {`{"content":{"msg":{"NewMsgId":0,"MsgType":1}}}`, "NewMsgId is 0"},
		"id null":             {`{"content":{"msg":{"NewMsgId":null,"MsgType":1}}}`, "NewMsgId is null"},
		"id a string":         {`{"content":{"msg":{"NewMsgId":"abc","MsgType":1}}}`, `NewMsgId does not decode: "abc" is not an unsigned 64-bit integer`},
		"id a numeric string": {`{"content":{"msg":{"NewMsgId":"123","MsgType":1}}}`, `NewMsgId does not decode: "123" is not`},
		"id a float":          {`{"content":{"msg":{"NewMsgId":1.5,"MsgType":1}}}`, "NewMsgId does not decode: 1.5 is not an unsigned 64-bit integer"},
		"id an exponent":      {`{"content":{"msg":{"NewMsgId":1e3}}}`, "NewMsgId does not decode: 1e3 is not"},
		"id negative":         {`{"content":{"msg":{"NewMsgId":-3,"MsgType":1}}}`, "NewMsgId does not decode: -3 is not an unsigned 64-bit integer"},
		"id 2^64 overflows":   {`{"content":{"msg":{"NewMsgId":18446744073709551616}}}`, "NewMsgId does not decode: 18446744073709551616 is not"},
		"id an object":        {`{"content":{"msg":{"NewMsgId":{"v":1}}}}`, `NewMsgId does not decode: {"v":1} is not`},
		"bad id wins":         {`{"content":{"msg":{"NewMsgId":-3,"MsgType":"x"}}}`, "NewMsgId does not decode: -3"},
		"item a string":       {`"hello"`, "item is a string, not an object"},
		"item a number":       {`42`, "item is a number, not an object"},
		"item null":           {`null`, "item is null, not an object"},
		"item an array":       {`[1,2]`, "item is an array, not an object"},
		"item a boolean":      {`true`, "item is a boolean, not an object"},
		"id very long":        {`{"content":{"msg":{"NewMsgId":` + strings.Repeat("9", 100) + `}}}`, "NewMsgId does not decode: " + strings.Repeat("9", 64) + "... is not"},
		"content an array":    {`{"content":[{"msg":{"NewMsgId":5}}]}`, "item does not decode: content: got JSON array, want an object"},
		"msg a string":        {`{"content":{"msg":"x"}}`, "item does not decode: content.msg: got JSON string, want an object"},
		"Content a number":    {`{"content":{"msg":{"NewMsgId":5,"Content":7}}}`, "item does not decode: content.msg.Content: got JSON number, want an object"},
		"MsgType a string":    {`{"content":{"msg":{"NewMsgId":5,"MsgType":"1"}}}`, "item does not decode: content.msg.MsgType: got JSON string, want an integer"},
		"CreateTime a float":  {`{"content":{"msg":{"NewMsgId":5,"CreateTime":1.5}}}`, "item does not decode: content.msg.CreateTime: got JSON number 1.5, want an integer"},
		"isSender a string":   {`{"content":{"msg":{"NewMsgId":5},"isSender":"1"}}`, "item does not decode: content.isSender: got JSON string, want an integer"},
		"MsgSource an object": {`{"content":{"msg":{"NewMsgId":5,"MsgSource":{}}}}`, "item does not decode: content.msg.MsgSource: got JSON object, want a string"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := `{"list":[` + good1 + `, ` + tc.item + ` ,` + good2 + `],"keyBuff":"k=="}`
			p, err := DecodePage([]byte(in))
			if err != nil {
				t.Fatalf("page failed: %v", err)
			}
			if p.KeyBuff != "k==" {
				t.Errorf("keyBuff = %q", p.KeyBuff)
			}
			if len(p.Messages) != 2 || p.Messages[0].ID != 9007199254740993 || p.Messages[0].Text != "一" ||
				p.Messages[1].ID != 18446744073709551615 || p.Messages[1].Text != "二" {
				t.Errorf("messages = %+v, want the two good items in order", p.Messages)
			}
			if len(p.Skipped) != 1 {
				t.Fatalf("skipped = %+v, want one item", p.Skipped)
			}
			s := p.Skipped[0]
			if s.Index != 1 || s.Raw != tc.item || !strings.Contains(s.Reason, tc.reason) {
				t.Errorf("skipped = %+v, want index 1, raw %s, reason containing %q", s, tc.item, tc.reason)
			}
		})
	}
}

func TestDecodePageSkippedDetails(t *testing.T) {
	t.Parallel()
	long := `{"content":{"msg":{"NewMsgId":"x","Content":{"string":"a` + strings.Repeat("好", 400) + `"}}}}`
	tests := map[string]struct {
		in       string
		messages []uint64
		skipped  []int
		raw      string // Raw of the first skipped item, when not ""
	}{
		"all skipped": {
			in:      `{"list":[{},"x",{"content":{"msg":{"NewMsgId":-1}}}],"keyBuff":""}`,
			skipped: []int{0, 1, 2},
		},
		"repeated id kept twice": {
			in:       `{"list":[{"content":{"msg":{"NewMsgId":7}}},{"content":{"msg":{"NewMsgId":7}}}],"keyBuff":""}`,
			messages: []uint64{7, 7},
		},
		"repeated id kept twice on the slow path": {
			in:       `{"list":[{"content":{"msg":{"NewMsgId":7}}},{},{"content":{"msg":{"NewMsgId":7}}}],"keyBuff":""}`,
			messages: []uint64{7, 7},
			skipped:  []int{1},
		},
		"long item cut on a rune": {
			in:      `{"list":[` + long + `,{"content":{"msg":{"NewMsgId":8}}}],"keyBuff":""}`,
			skipped: []int{0},
			// 56 bytes before the first 3-byte rune: 56+322*3 = 1022
			// bytes fit in 1 KiB, 1025 would not.
			raw:      long[:1022],
			messages: []uint64{8},
		},
		"null list": {in: `{"list":null,"keyBuff":""}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := DecodePage([]byte(tc.in))
			if err != nil {
				t.Fatalf("page failed: %v", err)
			}
			var ids []uint64
			for _, m := range p.Messages {
				ids = append(ids, m.ID)
			}
			var idx []int
			for _, s := range p.Skipped {
				idx = append(idx, s.Index)
				if s.Reason == "" {
					t.Errorf("item %d skipped without a reason", s.Index)
				}
			}
			if !slices.Equal(ids, tc.messages) || !slices.Equal(idx, tc.skipped) {
				t.Errorf("messages %v, skipped %v; want %v, %v", ids, idx, tc.messages, tc.skipped)
			}
			if tc.raw != "" && p.Skipped[0].Raw != tc.raw {
				t.Errorf("raw is %d bytes %q..., want %d bytes", len(p.Skipped[0].Raw), p.Skipped[0].Raw[:60], len(tc.raw))
			}
		})
	}
}

// textPage builds a /syncFinder data object of n text messages.
func textPage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"list":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"syncKeyType":1,"itemType":1,"subType":0,"content":{"msg":{"Status":3,"ImgBuf":{"iLen":0},"Content":{"string":"你好，请问这个商品还有货吗？编号 %d"},"CreateTime":%d,"MsgSeq":%d,"NewMsgId":%d,"FromUserName":{"string":"fv1_%064d@findermsgstranger"},"ToUserName":{"string":"v2_060000231003b20faec8c6e18f10c7d6c903ec3db0776955d3d97c6b329d6aa58693bcdb7ad1@finder"},"MsgType":1,"ImgStatus":1,"MsgId":%d,"MsgSource":""},"extinfo":"CAIQAw==","isSender":0,"msgSessionId":"%064d@findermsg","seq":%d}}`,
			i, 1692186142+i, 2000+i, uint64(9007199254740993)+uint64(i)*7919, i, 2000+i, i, 2000+i)
	}
	b.WriteString(`],"keyBuff":"CgUIARDaCQoECAIQAAoECAMQAAoECAQQAAoECAUQAAoECAYQAAoECAcQAAoECAgQAAoECAkQABAA"}`)
	return []byte(b.String())
}

// decodePageStd is DecodePage with encoding/json in place of the fast
// decoder: the baseline the benchmarks compare against.
func decodePageStd(data []byte) (*Page, error) {
	var w wirePage
	if err := stdjson.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	p := &Page{KeyBuff: *w.KeyBuff, Messages: make([]sdk.Message, len(w.List))}
	for i := range w.List {
		fromWire(&p.Messages[i], &w.List[i].Content)
	}
	return p, nil
}

func BenchmarkDecodePage(b *testing.B) {
	// text100_bad_id has one item whose id is a float: the price of the
	// per-item fallback. encoding_json is left out there, as the baseline
	// fails the whole page.
	badID := bytes.Replace(textPage(100), []byte(`"NewMsgId":9007199254740993`), []byte(`"NewMsgId":1.5`), 1)
	pages := map[string][]byte{"seed": seedData(b), "text100": textPage(100), "text100_bad_id": badID}
	decoders := map[string]func([]byte) (*Page, error){"finderbot": DecodePage, "encoding_json": decodePageStd}
	for _, page := range []string{"seed", "text100", "text100_bad_id"} {
		for _, dec := range []string{"finderbot", "encoding_json"} {
			if page == "text100_bad_id" && dec == "encoding_json" {
				continue
			}
			data, decode := pages[page], decoders[dec]
			b.Run(page+"/"+dec, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := decode(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
