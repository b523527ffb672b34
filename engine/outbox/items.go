package outbox

import (
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// Items addresses rule actions for the outbox. Replies answer m; a reply
// without a message to answer, or to a message that must not be answered
// (the account's own, a system notice), is dropped. Plugin actions carry m.
func Items(acts []rules.Action, account string, m *sdk.Message) []store.Item {
	if len(acts) == 0 {
		return nil
	}
	out := make([]store.Item, 0, len(acts))
	for _, a := range acts {
		it := store.Item{Account: account, Kind: a.Kind, Rule: a.Rule, Text: a.Text}
		switch a.Kind {
		case rules.KindReply:
			if m == nil || !addressReply(&it, m) {
				continue
			}
		case rules.KindReplyImage:
			// An image reply is a reply: the same order, pace, echo
			// settlement and exactly-once delivery, sent through
			// /privateSendImg.
			it.Kind, it.Image = store.KindReply, a.Image
			if m == nil || !addressReply(&it, m) {
				continue
			}
		case rules.KindSend:
			it.To, it.Conversation = a.To, "to:"+a.To
		case rules.KindPlugin:
			it.Plugin, it.Action, it.Params = a.Plugin, a.Name, a.Params
			if m != nil {
				it.Msg = m
				it.MsgID = m.ID
				it.Conversation = Conversation(m)
				if !m.FromSelf && m.From != "" {
					it.To, it.My, it.Session = m.From, m.To, m.Session
				}
			} else {
				it.Conversation = "plugin:" + a.Plugin
			}
		}
		out = append(out, it)
	}
	return out
}

// addressReply fills in a reply to m: the conversation, the receiver, the
// account's own Finder identity and the session. It reports false for
// messages that must not be answered: the account's own messages and
// messages without a sender (system notices).
func addressReply(it *store.Item, m *sdk.Message) bool {
	if m.FromSelf || m.From == "" || m.Type == sdk.TypeSystem {
		return false
	}
	it.To, it.My, it.Session, it.MsgID = m.From, m.To, m.Session, m.ID
	it.Conversation = Conversation(m)
	return true
}

// Conversation names the conversation of m, in which actions keep order.
func Conversation(m *sdk.Message) string {
	if m.Session != "" {
		return m.Session
	}
	return m.From
}
