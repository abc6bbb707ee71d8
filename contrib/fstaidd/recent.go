package main

import (
	"sync"
	"time"

	"github.com/fstaid/fstaid"
)

// recentRounds is how many rounds /status keeps (fstaidd status shows
// them): a fixed ring, so memory stays bounded however long fstaidd runs.
const recentRounds = 10

// recent is what /status shows beyond the Monitor's Status, fed by its
// notices: since when the state holds, and the last rounds, each check's
// result and latency. observe copies a round into the ring by value, so
// that a round allocates nothing here.
type recent struct {
	mu    sync.Mutex
	state fstaid.State
	since time.Time
	ring  [recentRounds]roundCopy
	n     uint64 // rounds observed
}

// roundCopy is a Round with its results held by value.
type roundCopy struct {
	round   fstaid.Round // its Result pointers are not kept
	results [4]fstaid.Result
	has     [4]bool
}

// observe is a fstaid.WithObserver function.
func (r *recent) observe(n fstaid.Notice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n.State != r.state {
		r.state, r.since = n.State, n.Time
		if r.since.IsZero() {
			r.since = time.Now()
		}
	}
	if n.Kind != fstaid.NoticeRound || n.Round == nil {
		return
	}
	c := &r.ring[r.n%recentRounds]
	c.round = *n.Round
	for i, res := range roundResults(n.Round) {
		c.has[i] = res != nil
		if res != nil {
			c.results[i] = *res
		}
	}
	c.round.Self, c.round.Primary, c.round.Secondary, c.round.SelfAfter = nil, nil, nil, nil
	r.n++
}

func roundResults(rd *fstaid.Round) [4]*fstaid.Result {
	return [4]*fstaid.Result{rd.Self, rd.Primary, rd.Secondary, rd.SelfAfter}
}

// snapshot returns since when the state holds, and the kept rounds,
// newest first.
func (r *recent) snapshot() (time.Time, []fstaid.Round) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := min(r.n, recentRounds)
	out := make([]fstaid.Round, 0, kept)
	for i := uint64(1); i <= kept; i++ {
		c := &r.ring[(r.n-i)%recentRounds]
		rd := c.round
		var res [4]*fstaid.Result
		for j := range res {
			if c.has[j] {
				v := c.results[j]
				res[j] = &v
			}
		}
		rd.Self, rd.Primary, rd.Secondary, rd.SelfAfter = res[0], res[1], res[2], res[3]
		out = append(out, rd)
	}
	return r.since, out
}
