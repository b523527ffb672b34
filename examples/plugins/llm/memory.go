package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// turn is one question of a conversation and the answer given.
type turn struct {
	// ID is the action's idempotency key: an action called again (after a
	// crash, a timeout) gets the answer recorded for it, not a new one.
	ID       string    `json:"id,omitempty"`
	Question string    `json:"q"`
	Answer   string    `json:"a"`
	At       time.Time `json:"at"`
}

// memory is what is kept of one conversation in the host's key-value
// store, under memoryKey.
type memory struct {
	Turns []turn `json:"turns"`
	// DifyConversation is the conversation_id Dify gave it; Dify keeps the
	// conversation's history itself.
	DifyConversation string    `json:"dify_conversation,omitempty"`
	DifyAt           time.Time `json:"dify_at,omitzero"`
}

// maxQuestionRunes bounds a question as remembered: memory stays bounded
// whatever a stranger writes.
const maxQuestionRunes = 500

// memoryKey is where a conversation's memory lives. The key is bounded by
// the host (1 KiB); account and conversation names are far shorter.
func memoryKey(account, conv string) string { return "mem/" + account + "/" + conv }

// loadMemory reads a conversation's memory and forgets what is older than
// maxAge at now.
func loadMemory(ctx context.Context, h sdk.Host, key string, maxAge time.Duration, now time.Time) (memory, error) {
	var m memory
	v, ok, err := h.Get(ctx, key)
	if err != nil {
		return m, fmt.Errorf("llm: read memory: %w", err)
	}
	if ok {
		if err := json.Unmarshal(v, &m); err != nil {
			// A damaged record is forgotten, not fatal: the conversation
			// goes on without its history.
			m = memory{}
		}
	}
	keep := m.Turns[:0]
	for _, t := range m.Turns {
		if now.Sub(t.At) <= maxAge {
			keep = append(keep, t)
		}
	}
	m.Turns = keep
	if !m.DifyAt.IsZero() && now.Sub(m.DifyAt) > maxAge {
		m.DifyConversation, m.DifyAt = "", time.Time{}
	}
	return m, nil
}

// answered returns the turn recorded for action id, if any.
func (m *memory) answered(id string) (turn, bool) {
	if id == "" {
		return turn{}, false
	}
	for _, t := range m.Turns {
		if t.ID == id {
			return t, true
		}
	}
	return turn{}, false
}

// add records a turn, keeping the last n.
func (m *memory) add(t turn, n int) {
	t.Question = cutRunes(t.Question, maxQuestionRunes)
	m.Turns = append(m.Turns, t)
	if over := len(m.Turns) - max(n, 1); over > 0 {
		m.Turns = append(m.Turns[:0], m.Turns[over:]...)
	}
}

// maxMemoryBytes keeps a conversation's record under the host's bound on a
// value (64 KiB), however long its turns.
const maxMemoryBytes = 60 << 10

func (m *memory) save(ctx context.Context, h sdk.Host, key string) error {
	v, err := json.Marshal(m)
	for err == nil && len(v) > maxMemoryBytes && len(m.Turns) > 1 {
		m.Turns = m.Turns[1:]
		v, err = json.Marshal(m)
	}
	if err != nil {
		return err
	}
	if err := h.Put(ctx, key, v); err != nil {
		return fmt.Errorf("llm: write memory: %w", err)
	}
	return nil
}
