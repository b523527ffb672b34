package rules

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// benchRules writes a YAML rule set of n rules mixing equality, keyword and
// regex conditions, the kinds operators write.
func benchRules(n int) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    priority: %d\n", i, i%7)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "    when: msg.Text == \"问题%d\" && !msg.FromSelf\n", i)
		case 1:
			fmt.Fprintf(&b, "    when: msg.Text contains \"关键词%d号\"\n", i)
		case 2:
			fmt.Fprintf(&b, "    when: msg.Text matches \"^订单-[0-9]+-k%dz$\"\n", i)
		case 3:
			fmt.Fprintf(&b, "    when: containsAny(msg.Text, \"价格%d\", \"多少钱%d\") && msg.Type == \"text\"\n", i, i)
		}
		fmt.Fprintf(&b, "    actions:\n      - reply: \"答复%d\"\n", i)
	}
	return []byte(b.String())
}

// benchMessages is a mix: most messages match no rule, some match one.
func benchMessages(n int) []*sdk.Message {
	var ms []*sdk.Message
	for i := range 64 {
		var text string
		switch i % 8 {
		case 0:
			text = fmt.Sprintf("问题%d", (i*37)%n/4*4)
		case 1:
			text = fmt.Sprintf("请问关键词%d号怎么用", (i*13)%n/4*4+1)
		case 2:
			text = "你好，请问今天发货吗？"
		case 3:
			text = "哈喽"
		case 4:
			text = fmt.Sprintf("订单-2026-k%dz", (i*7)%n/4*4+2)
		default:
			text = "好的谢谢，收到了"
		}
		ms = append(ms, &sdk.Message{ID: uint64(i), Type: sdk.TypeText, Text: text, From: "fv1_x@findermsgstranger", Session: "x@findermsg"})
	}
	return ms
}

func BenchmarkMatch(b *testing.B) {
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, n := range []int{10, 100, 1000, 10000} {
		set, err := Compile(Options{}, Source{Name: "bench.yaml", Data: benchRules(n)})
		if err != nil {
			b.Fatal(err)
		}
		msgs := benchMessages(n)
		for _, mode := range []string{"indexed", "naive"} {
			if mode == "naive" && n == 10000 && testing.Short() {
				continue
			}
			b.Run(fmt.Sprintf("rules=%d/%s", n, mode), func(b *testing.B) {
				e := &evaluator{}
				var dst []Action
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					dst = set.match(e, dst[:0], msgs[i%len(msgs)], Conversation{}, "acc", now, nil, mode == "indexed")
					i++
				}
			})
		}
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	set, err := Compile(Options{}, Source{Name: "bench.yaml", Data: benchRules(10000)})
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchMessages(10000)
	b.ReportAllocs()
	b.ResetTimer() // the compile above is not the benchmark
	b.RunParallel(func(pb *testing.PB) {
		var dst []Action
		i := 0
		for pb.Next() {
			dst = set.Match(dst[:0], msgs[i%len(msgs)], "acc", now, nil)
			i++
		}
	})
}

// BenchmarkLoad10000 loads, compiles and indexes 10,000 rules, reporting the
// heap the resulting Set holds.
func BenchmarkLoad10000(b *testing.B) {
	data := benchRules(10000)
	var set *Set
	for b.Loop() {
		var err error
		set, err = Compile(Options{}, Source{Name: "bench.yaml", Data: data})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	set = nil
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	set, _ = Compile(Options{}, Source{Name: "bench.yaml", Data: data})
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(set)
}
