package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// slowFirstLock's first Acquire takes a while and fails, as a lock
// directory on a struggling disk or an etcd losing its leader does; the
// next would succeed.
type slowFirstLock struct {
	acquires atomic.Int32
	mu       sync.Mutex
	rec      *fstaid.Record
}

func (l *slowFirstLock) Load(context.Context) (*fstaid.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec, nil
}

func (l *slowFirstLock) Acquire(_ context.Context, rec *fstaid.Record) error {
	if l.acquires.Add(1) == 1 {
		time.Sleep(1500 * time.Millisecond)
		return fmt.Errorf("%w: the disk is struggling", fstaid.ErrLockUnavailable)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	return nil
}

func (l *slowFirstLock) Update(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	return nil
}

func (l *slowFirstLock) Done() <-chan struct{} { return nil }

// Found by the model (contrib/model, P2): fstaidd is told to stop while a
// /fail waits behind another attempt that then fails to take the lock.
// The waiting request must not begin a failover after the stop (it could
// outlast TimeoutStopSec or the shutdown and be cut in half): it is
// answered 503, and no handler runs.
func TestStopEndsAQueuedFail(t *testing.T) {
	e := newEnv(t, 0, users)
	l := &slowFirstLock{}
	r := e.start(fstaid.WithLock(l))
	r.waitState(t, fstaid.StateArmed)
	codes := make(chan int, 2)
	post := func() {
		resp, _, err := request(context.Background(), "POST", r.url+"/fail", "ops", "pw")
		if err != nil {
			codes <- -1
			return
		}
		codes <- resp.StatusCode
	}
	go post()
	for l.acquires.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	go post() // waits for the first attempt
	time.Sleep(300 * time.Millisecond)
	r.stop()
	for range 2 {
		if code := <-codes; code != 503 {
			t.Errorf("POST /fail = %d, want 503 (lock unavailable, then stopping)", code)
		}
	}
	r.wait(t)
	if n := l.acquires.Load(); n != 1 {
		t.Errorf("the lock was taken %d times, want once: the queued /fail began a failover after the stop", n)
	}
	if c := e.calls(); len(c) != 0 {
		t.Errorf("handler calls %q after the stop, want none", c)
	}
}
