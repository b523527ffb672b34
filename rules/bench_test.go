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
// regex conditions, every one narrowed by a keyword or an equality on
// msg.Text: the index's best case.
func benchRules(n int) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		writeRule(&b, fmt.Sprintf("r%d", i), i%7, textCond(i))
	}
	return []byte(b.String())
}

// textCond is one of the conditions on msg.Text operators write most.
func textCond(i int) string {
	switch i % 4 {
	case 0:
		return fmt.Sprintf(`msg.Text == "问题%d" && !msg.FromSelf`, i)
	case 1:
		return fmt.Sprintf(`msg.Text contains "关键词%d号"`, i)
	case 2:
		return fmt.Sprintf(`msg.Text matches "^订单-[0-9]+-k%dz$"`, i)
	}
	return fmt.Sprintf(`containsAny(msg.Text, "价格%d", "多少钱%d") && msg.Type == "text"`, i, i)
}

func writeRule(b *strings.Builder, name string, priority int, when string) {
	fmt.Fprintf(b, "  - name: %s\n    priority: %d\n    when: '%s'\n    actions:\n      - reply: \"答复%s\"\n", name, priority, when, name)
}

// realisticRules writes the rule set of one busy account: n-5 rules of
// which 90% are keyword, equality and regex rules on msg.Text and 10% the
// kinds msg.Text cannot narrow (a VIP sender, a sysmsg type, opening hours,
// a length, a media window), then five fixed catch-alls at the lowest
// priority.
func realisticRules(n int) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range max(n-5, 0) {
		when := textCond(i)
		if i%10 == 9 {
			switch (i / 10) % 5 {
			case 0:
				when = fmt.Sprintf(`msg.Type == "text" && !msg.FromSelf && msg.From == "fv1_vip%d@findermsgstranger"`, i)
			case 1:
				when = fmt.Sprintf(`msg.Sys.Type == "sysmsg%d"`, i)
			case 2:
				when = fmt.Sprintf(`weekday() == %d && !between("09:00", "%02d:00") && msg.Type == "text"`, i%7, 18+i%6)
			case 3:
				when = fmt.Sprintf(`len(msg.Text) > %d && !msg.FromSelf && msg.Type == "text"`, 50+(i*7)%450)
			case 4:
				when = fmt.Sprintf(`msg.Type != "text" && msg.Sys.Type == "" && !msg.FromSelf && between("%02d:00", "%02d:30")`, i%24, i%24)
			}
		}
		writeRule(&b, fmt.Sprintf("r%d", i), 1+i%7, when)
	}
	for i, when := range []string{
		`msg.Type == "text" && !msg.FromSelf`,
		`msg.Sys.Type == "finderlivestartnotifymsg"`,
		`!between("09:00", "21:00") && !msg.FromSelf`,
		`len(msg.Text) > 50 && !msg.FromSelf`,
		`msg.Type == "image" && !msg.FromSelf`,
	} {
		writeRule(&b, fmt.Sprintf("fixed%d", i), 0, when)
	}
	return []byte(b.String())
}

// shops is how many shops a many-shops set of n rules serves: 100 rules
// each, or one shop for smaller sets.
func shops(n int) int { return max(1, n/100) }

// manyShopsRules writes the rule set of a daemon serving many shops: each
// its own FAQ on keywords all shops share, its greetings, media replies and
// opening hours, every rule tied to its account.
func manyShopsRules(n int) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	k := shops(n)
	for i := range n {
		shop, j := i%k, i/k
		var when string
		switch j % 10 {
		case 7:
			when = fmt.Sprintf(`msg.Text in ["你好%d", "在吗%d"]`, j, j)
		case 8:
			when = fmt.Sprintf(`msg.Type == "%s" && !msg.FromSelf`, []string{"image", "video", "voice", "emoji", "location"}[j/10%5])
		case 9:
			when = fmt.Sprintf(`weekday() == %d && !between("09:00", "%02d:00") && !msg.FromSelf`, j/10%7, 18+j/10%6)
		default:
			when = fmt.Sprintf(`msg.Text contains "关键词%d号" && !msg.FromSelf`, j)
		}
		writeRule(&b, fmt.Sprintf("s%d-r%d", shop, j), j%7, fmt.Sprintf(`account == "shop-%d" && %s`, shop, when))
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

// realisticMessages is benchMessages with what else an account receives:
// images, live notices, its own messages, a long question.
func realisticMessages(n int) []*sdk.Message {
	ms := benchMessages(n)
	for i, m := range ms {
		switch {
		case i%16 == 6:
			m.Type, m.Text, m.Sys = sdk.TypeSystem, "", &sdk.SysMsg{Type: "finderlivestartnotifymsg"}
		case i%8 == 7:
			m.Type, m.Text, m.Image = sdk.TypeImage, "", &sdk.Image{MD5: "x"}
		case i%11 == 0:
			m.FromSelf = true
		case i%13 == 5:
			m.Text = strings.Repeat("请问这个商品的尺码偏大还是偏小，", 4)
		}
	}
	return ms
}

// manyShopsMessages are messages to the shops of a many-shops set of n
// rules: FAQ questions, greetings, images and chatter.
func manyShopsMessages(n int) []*sdk.Message {
	var ms []*sdk.Message
	for i := range 64 {
		m := &sdk.Message{ID: uint64(i), Type: sdk.TypeText, From: "fv1_x@findermsgstranger", Session: "x@findermsg",
			Account: fmt.Sprintf("shop-%d", (i*7)%shops(n))}
		j := (i * 13) % min(n, 100)
		switch i % 6 {
		case 0, 1:
			m.Text = fmt.Sprintf("请问关键词%d号怎么用", j)
		case 2:
			m.Text = fmt.Sprintf("你好%d", j/10*10+7)
		case 3:
			m.Type, m.Image = sdk.TypeImage, &sdk.Image{MD5: "x"}
		default:
			m.Text = "好的谢谢，收到了"
		}
		ms = append(ms, m)
	}
	return ms
}

// benchMixes are the rule sets the benchmarks run, by name.
var benchMixes = []struct {
	name     string
	rules    func(int) []byte
	messages func(int) []*sdk.Message
}{
	{"realistic", realisticRules, realisticMessages},
	{"many-shops", manyShopsRules, manyShopsMessages},
	{"text-only-best-case", benchRules, benchMessages},
}

// benchTimes are the clocks messages arrive at: morning, afternoon, night.
var benchTimes = []time.Time{
	time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 20, 6, 30, 0, 0, time.UTC),
	time.Date(2026, 11, 20, 14, 15, 0, 0, time.UTC),
}

// BenchmarkMatch matches messages through Set.Match, as the daemon does,
// beside evaluating every rule (naive) and beside the index as it was
// before guards and the new dimensions (old-index), for each mix at 10 to
// 10,000 rules. The index's sub-benchmark reports its speed-up over both,
// measured in the same run.
func BenchmarkMatch(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run("mix="+mix.name, func(b *testing.B) {
			for _, n := range []int{10, 100, 1000, 10000} {
				b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { benchMatch(b, mix.rules(n), mix.messages(n)) })
			}
		})
	}
}

func benchMatch(b *testing.B, rules []byte, msgs []*sdk.Message) {
	set, err := Compile(Options{}, Source{Name: "bench.yaml", Data: rules})
	if err != nil {
		b.Fatal(err)
	}
	old, err := Compile(Options{legacyIndex: true}, Source{Name: "bench.yaml", Data: rules})
	if err != nil {
		b.Fatal(err)
	}
	nsPerOp := map[string]float64{}
	for _, mode := range []string{"naive", "old-index", "index"} {
		b.Run(mode, func(b *testing.B) {
			e := newEvaluator()
			var dst []Action
			b.ReportAllocs()
			i := 0
			cpu0, cpuOK := cpuTime()
			for b.Loop() {
				m, now := msgs[i%len(msgs)], benchTimes[i%len(benchTimes)]
				switch mode {
				case "naive":
					dst = set.match(e, dst[:0], m, m.Account, now, nil, false)
				case "old-index":
					dst = old.Match(dst[:0], m, m.Account, now, nil)
				default:
					dst = set.Match(dst[:0], m, m.Account, now, nil)
				}
				i++
			}
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			nsPerOp[mode] = ns
			b.ReportMetric(1e9/ns, "msgs/s")
			if mode == "index" {
				b.ReportMetric(nsPerOp["naive"]/ns, "x-naive")
				b.ReportMetric(nsPerOp["old-index"]/ns, "x-old-index")
			}
		})
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	set, err := Compile(Options{}, Source{Name: "bench.yaml", Data: realisticRules(10000)})
	if err != nil {
		b.Fatal(err)
	}
	msgs := realisticMessages(10000)
	b.ReportAllocs()
	b.ResetTimer() // the compile above is not the benchmark
	b.RunParallel(func(pb *testing.PB) {
		var dst []Action
		i := 0
		for pb.Next() {
			dst = set.Match(dst[:0], msgs[i%len(msgs)], "acc", benchTimes[i%len(benchTimes)], nil)
			i++
		}
	})
}

// BenchmarkLoad10000 loads, compiles and indexes 10,000 rules of each mix,
// reporting the heap the resulting Set holds.
func BenchmarkLoad10000(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run("mix="+mix.name, func(b *testing.B) {
			data := mix.rules(10000)
			var set *Set
			b.ReportAllocs()
			cpu0, cpuOK := cpuTime()
			for b.Loop() {
				var err error
				set, err = Compile(Options{}, Source{Name: "bench.yaml", Data: data})
				if err != nil {
					b.Fatal(err)
				}
			}
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			set = nil
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			set, _ = Compile(Options{}, Source{Name: "bench.yaml", Data: data})
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
			runtime.KeepAlive(set)
		})
	}
}
