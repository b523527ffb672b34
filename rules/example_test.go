package rules_test

import (
	"fmt"
	"time"

	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

const greetRules = `
rules:
  - name: greet
    priority: 10
    stop: true
    when: msg.Text == "哈喽" && !msg.FromSelf
    cooldown: 30s
    actions:
      - reply: "你好，{{ msg.From }}"
      - plugin: crm.record
        with: { text: "{{ msg.Text }}" }
  - name: price
    when: containsAny(msg.Text, "价格", "多少钱")
    actions:
      - reply: 价格见橱窗
`

func Example() {
	set, err := rules.Compile(rules.Options{}, rules.Source{Name: "greet.yaml", Data: []byte(greetRules)})
	if err != nil {
		fmt.Println(err)
		return
	}
	cooldowns := rules.NewCooldowns(0) // kept across reloads
	now := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	msg := &sdk.Message{Type: sdk.TypeText, Text: "哈喽", From: "fv1_x@findermsgstranger", Session: "x@findermsg"}
	for _, a := range set.Match(nil, msg, "shop", now, cooldowns) {
		fmt.Println(a)
	}
	// The same greeting 10 s later is within the cooldown.
	fmt.Println(len(set.Match(nil, msg, "shop", now.Add(10*time.Second), cooldowns)))
	// Output:
	// {rule: greet, reply: "你好，fv1_x@findermsgstranger"}
	// {rule: greet, plugin: crm.record, with: {text: "哈喽"}}
	// 0
}

func ExampleCompile_errors() {
	_, err := rules.Compile(rules.Options{}, rules.Source{Name: "greet.yaml", Data: []byte(`
rules:
  - name: greet
    when: msg.Txt == "哈喽"
    actions: [{ reply: hi }]
`)})
	fmt.Println(err)
	// Output:
	// rules: greet.yaml:4:15: rule "greet": when: type sdk.Message has no field Txt
	//         when: msg.Txt == "哈喽"
	//                   ^
}

func ExampleSet_Explain() {
	set, _ := rules.Compile(rules.Options{}, rules.Source{Name: "greet.yaml", Data: []byte(greetRules)})
	msg := &sdk.Message{Type: sdk.TypeText, Text: "哈喽", FromSelf: true}
	for _, t := range set.Explain(msg, "shop", time.Now()) {
		if t.Candidate {
			fmt.Printf("%s: matched=%v, %s\n", t.Rule, t.Matched, t.Why)
		} else {
			fmt.Printf("%s: ruled out by the index, needs %s\n", t.Rule, t.Need)
		}
	}
	// Output:
	// greet: matched=false, !msg.FromSelf is false: msg.FromSelf = true
	// price: ruled out by the index, needs msg.Text contains "价格" or msg.Text contains "多少钱"
}

func ExampleSet_Fire() {
	set, _ := rules.Compile(rules.Options{}, rules.Source{Name: "cron.yaml", Data: []byte(`
rules:
  - name: morning
    on: cron
    schedule: "0 9 * * *"   # Asia/Shanghai unless Options.Location says otherwise
    actions:
      - send: { to: wxid_operator, text: "早上好 {{ clock() }}" }
`)})
	c := set.Crons()[0]
	at := c.Schedule.Next(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	acts, _ := set.Fire(nil, c.Name, "shop", at)
	fmt.Println(at.UTC(), acts[0])
	// Output:
	// 2026-11-20 01:00:00 +0000 UTC {rule: morning, send: {to: "wxid_operator", text: "早上好 09:00"}}
}
