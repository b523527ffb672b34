package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// BenchmarkAnswer is one answer through the plugin protocol, knowledge
// picked from a sectioned FAQ and memory read and written through the
// host, from a model that answers at once. Beside BenchmarkModelAlone (the
// same model call made directly), the difference is the plugin's own time.
func BenchmarkAnswer(b *testing.B) {
	p := newProvider(b, chat("好的，48 小时内发货。", 100, 10))
	r := newBenchRig(b, p, openAIConfig)
	msg := sdktest.Text("什么时候发货？")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m := *msg
		m.Session = fmt.Sprintf("s%d@findermsg", i%100) // 100 conversations
		resp, err := r.Handle(context.Background(), &sdk.HandleRequest{ID: fmt.Sprint(i), Action: "answer", Account: "shop", Message: &m})
		if err != nil || len(resp.Replies) != 1 {
			b.Fatal(err, resp)
		}
	}
}

// BenchmarkModelAlone is the model call of BenchmarkAnswer made directly.
func BenchmarkModelAlone(b *testing.B) {
	p := newProvider(b, chat("好的，48 小时内发货。", 100, 10))
	s, err := load(writeBenchConfig(b, p, openAIConfig), p.srv.Client(), func(string) string { return "sk" })
	if err != nil {
		b.Fatal(err)
	}
	q := ask{System: "你是客服", Question: "什么时候发货？"}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.model.answer(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickLargeFAQ picks the sections for a question from a 1 MiB
// knowledge file of 9,620 sections that all share the question's terms,
// the worst case of the index.
func BenchmarkPickLargeFAQ(b *testing.B) {
	var md strings.Builder
	for md.Len() < 1<<20 {
		md.WriteString("## 问题标题编号\n\n这是一个关于茶具清洗退货发票保存的回答，内容比较长一些。\n\n")
	}
	k := newKnowledge(md.String(), 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(k.pick("紫砂壶怎么清洗？可以退货吗", 3)) != 3 {
			b.Fatal("picked fewer than 3")
		}
	}
}
