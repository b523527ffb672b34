package natsstore_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/natstest"
)

// TestLostAcknowledgementIsFoundOnTheSubject pins the server behaviour a
// write whose acknowledgement was lost relies on: published again with the
// same message id and expected last sequence, it is answered as a
// duplicate of the stored message (a replicated stream checks duplicates
// first) or refused for the sequence it moved (a lone server checks the
// expected sequence first) — never stored twice — and the stored message
// carries the id, by which the writer knows it as its own.
func TestLostAcknowledgementIsFoundOnTheSubject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		c := natstest.Start(t, n)
		js, err := jetstream.New(c.Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DUP", Subjects: []string{"dup.>"}, Replicas: n}); err != nil {
			t.Fatal(err)
		}
		publish := func() (*jetstream.PubAck, error) {
			return js.Publish(ctx, "dup.a", []byte("event"), jetstream.WithMsgID("w-1"), jetstream.WithExpectLastSequencePerSubject(0))
		}
		first, err := publish()
		if err != nil {
			t.Fatal(err)
		}
		again, err := publish()
		if err == nil && (!again.Duplicate || again.Sequence != first.Sequence) {
			t.Fatalf("%d servers: the same write again was stored again: %+v", n, again)
		}
		st, err := js.Stream(ctx, "DUP")
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(ctx, "dup.a")
		if err != nil || m.Sequence != first.Sequence || m.Header.Get(jetstream.MsgIDHeader) != "w-1" {
			t.Fatalf("%d servers: the subject's last message = %+v, %v; want sequence %d with id w-1", n, m, err, first.Sequence)
		}
	}
}
