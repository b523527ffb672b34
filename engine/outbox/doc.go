// Package outbox performs the actions the rules and plugins ask for —
// replies (/privateSend), sends (/sendText) and plugin calls — from the
// store's durable outbox: in order within a conversation, at each account's
// pace, only while the account is online, and with every step of every
// delivery recorded in the store, so that a crash at any moment neither
// loses an action nor — under the assumptions below — performs a reply
// twice.
//
// # Delivery states
//
// Each item carries a store.State:
//
//	queued ──begin──▶ attempting ──accepted──▶ delivered (reply) ──echo──▶ gone
//	  ▲                   │         └────────▶ gone (send, plugin)
//	  │                   ├──refused──▶ queued (NextAt later) | dead (attempts exhausted)
//	  │                   └──anything else──▶ in doubt
//	  │                                          ├──echo──▶ gone
//	  └──no echo once the sync caught up past────┤
//	     the attempt plus Config.Doubt           └──(send) dead, marked in doubt
//
// "begin" is written to the store before the action is handed to the
// upstream; a crash after it finds the item attempting, which is read as in
// doubt. Outcomes are written with the next begin of the same account (or
// at once when the account has nothing else due), so a busy account pays
// one write per send and the store shares one fsync among many accounts.
// An outcome lost in a crash leaves the item attempting: in doubt, which is
// always safe.
//
// Only a refusal proves that the upstream did not act (upstream.Rejected: a
// refusal code, HTTP 4xx or 503, a transport failure before the request was
// written). A timeout, a transport failure after the request was written, a
// cut or malformed answer, an HTTP 5xx and a crash all make the action in
// doubt, by the same path.
//
// # Why a reply is delivered exactly once
//
// The argument rests on three assumptions about the upstream:
//
//  1. every reply it accepts is echoed into the account's own messages,
//     carrying the newMsgId it answered, and a sync that starts after the
//     acceptance returns the echo (or a later page does, before the sync
//     reports an empty page);
//  2. the replies of one conversation are accepted, and echoed, in the order
//     they were sent;
//  3. a request the upstream has not accepted within Config.Doubt (its call
//     timeout) of being sent is never accepted;
//
// and one about the store: a write that reports failure did not happen
// (each is one transaction).
//
// Replies of one conversation are handed to the upstream one at a time, in
// ID order, each only once the upstream accepted the one before; a reply in
// doubt holds its conversation until it is settled. (One write may begin
// several replies of a conversation, so that an account pays one fsync for
// many sends; those after a refusal or a doubt go back to the queue unsent.)
// So the accepted replies among a conversation's attempted ones always
// form a prefix of them in ID order — after a crash, several may be
// attempting. Echoes are matched inside the page's store transaction
// (store.MatchEchoes): first by the newMsgId of delivered replies, which
// are kept until their echo arrives for that reason, then — for replies
// whose answer never came — per conversation, in send order, by text,
// counting multiplicity: k equal replies attempting and j echoes settle
// the j oldest. By assumption 2 that is exactly the accepted prefix, so an
// echo settles the reply it belongs to, however many share its text. A
// reply in doubt is sent again only after a sync that began later than its
// attempt plus Config.Doubt has read everything (an empty page) without
// its echo: by assumptions 1 and 3 it was not accepted, so sending it
// again cannot make a second copy. Echo matching and the cursor advance in
// one transaction, so a crash cannot separate a settled reply from the
// page that settled it.
//
// What the argument does not cover: a message the operator types on the
// phone, into a conversation with a reply in doubt, with exactly that
// reply's text is taken for its echo.
//
// # Sends and plugin actions
//
// A /sendText has no echo. A send in doubt is therefore never repeated: it
// goes to the dead letters marked in doubt, with the reason, for the
// operator to retry or drop. Plugin actions are at-least-once: an action
// in flight when the daemon stops, or whose call failed, is called again
// with the same idempotency key (sdk.HandleRequest.ID), and the plugin's
// answer is recorded together with the removal of its action.
package outbox
