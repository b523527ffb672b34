package engine

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// scheduler runs each account's next step when it is due. Accounts that are
// waiting own no goroutine and no timer: one heap and one timer serve them
// all, so ten thousand idle accounts cost a few hundred bytes each. Due
// steps run on a fixed pool of workers, whose stacks stay grown between
// steps.
type scheduler struct {
	step    func(ctx context.Context, a *account) time.Duration // the delay until the next step; < 0 for none
	workers int
	due     chan *account

	mu   sync.Mutex
	h    dueHeap
	kick chan struct{}
	wg   sync.WaitGroup
}

// dueHeap orders accounts by their due time.
type dueHeap []*account

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *dueHeap) Push(x any)        { a := x.(*account); a.index = len(*h); *h = append(*h, a) }
func (h *dueHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	a.index = -1
	return a
}

func newScheduler(workers int, step func(context.Context, *account) time.Duration) *scheduler {
	if workers < 1 {
		workers = 1024
	}
	return &scheduler{step: step, workers: workers, due: make(chan *account), kick: make(chan struct{}, 1)}
}

// at asks for a's next step at t, or sooner if one is already due sooner.
// While a's step runs, the request is kept and applied when it ends.
func (s *scheduler) at(a *account, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case a.running:
		if a.again.IsZero() || t.Before(a.again) {
			a.again = t
		}
		return
	case a.index >= 0:
		if !t.Before(a.due) {
			return
		}
		a.due = t
		heap.Fix(&s.h, a.index)
	default:
		a.due = t
		heap.Push(&s.h, a)
	}
	if s.h[0] == a {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// run dispatches due steps until ctx is done, then waits for the steps in
// progress.
func (s *scheduler) run(ctx context.Context) {
	for range s.workers {
		s.wg.Add(1)
		go s.worker(ctx)
	}
	defer s.wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		wait := time.Hour // nothing scheduled: wait for a kick
		var a *account
		if len(s.h) > 0 {
			if wait = time.Until(s.h[0].due); wait <= 0 {
				a = heap.Pop(&s.h).(*account)
				a.running = true
			}
		}
		s.mu.Unlock()
		if a != nil {
			select {
			case s.due <- a: // blocks while every worker is busy
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (s *scheduler) worker(ctx context.Context) {
	defer s.wg.Done()
	for {
		var a *account
		select {
		case a = <-s.due:
		case <-ctx.Done():
			return
		}
		next := s.step(ctx, a)
		s.mu.Lock()
		a.running = false
		again := a.again
		a.again = time.Time{}
		s.mu.Unlock()
		if next >= 0 {
			t := time.Now().Add(next)
			if !again.IsZero() && again.Before(t) {
				t = again
			}
			s.at(a, t)
		} else if !again.IsZero() {
			s.at(a, again)
		}
	}
}
