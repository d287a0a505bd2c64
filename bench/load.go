package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxInFlight bounds the sends of one open-loop sender that wait for the
// provider at once. A sender that reaches it sends late, and its
// messages' latency, counted from their intended times, shows it.
const maxInFlight = 64

// sender is one sending device of the load phase.
type sender struct {
	id    uint32
	send  sendFunc
	quota int // messages it may send; -1: no limit but the duration
}

// quotas splits a total message bound over n senders (-1 each: none).
func quotas(total, n int) []int {
	q := make([]int, n)
	for i := range q {
		q[i] = -1
		if total > 0 {
			q[i] = total / n
			if i < total%n {
				q[i]++
			}
		}
	}
	return q
}

// openLoop sends at a fixed total rate, spread evenly over the senders
// and staggered between them. Message k of a sender is due at a fixed
// time from the start whatever happened to the ones before it: its
// latency is counted from then, so a provider that falls behind is seen
// to (no coordinated omission).
func openLoop(ctx context.Context, tr *tracker, senders []*sender, rate float64, dur time.Duration) {
	perSender := rate / float64(len(senders))
	interval := time.Duration(float64(time.Second) / perSender)
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, maxInFlight)
			offset := interval * time.Duration(i) / time.Duration(len(senders))
			for k := 0; s.quota < 0 || k < s.quota; k++ {
				due := offset + time.Duration(k)*interval
				if due >= dur {
					return
				}
				if wait := due - tr.since(); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func(h header) {
					defer wg.Done()
					called := tr.since()
					err := s.send(ctx, h)
					tr.sent(h, called, tr.since(), err)
					<-slots
				}(header{sender: s.id, num: uint32(k), at: due})
			}
		}()
	}
	wg.Wait()
}

// saturate keeps window sends of each sender waiting for the provider's
// acknowledgement at all times, until the duration or the quota is
// reached. A message's intended time is when its send starts.
func saturate(ctx context.Context, tr *tracker, senders []*sender, window int, dur time.Duration) {
	var wg sync.WaitGroup
	for _, s := range senders {
		var next atomic.Int64
		for range window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					k := next.Add(1) - 1
					if s.quota >= 0 && k >= int64(s.quota) {
						return
					}
					at := tr.since()
					if at >= dur {
						return
					}
					h := header{sender: s.id, num: uint32(k), at: at} // #nosec G115 -- a message count of one sender in one run, far below 2^32
					err := s.send(ctx, h)
					tr.sent(h, at, tr.since(), err)
				}
			}()
		}
	}
	wg.Wait()
}

// drain waits until every acknowledged message has reached every
// recipient, or the timeout.
func drain(ctx context.Context, tr *tracker, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for tr.outstanding() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}
