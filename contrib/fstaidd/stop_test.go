package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
// answered 503, and no handler runs. Under testing/synctest, so that the
// second request is known to be waiting when the stop comes.
func TestStopEndsAQueuedFail(t *testing.T) {
	startSignalLoop()
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, 0, users)
		l := &slowFirstLock{}
		healthy := fstaid.CheckFunc(func(context.Context) error { return nil })
		r, srv := e.startInBubble(fstaid.WithLock(l), fstaid.WithPrimary(healthy, time.Second))
		synctest.Wait()
		if resp, body, err := srv.request(context.Background(), "GET", "/status", "ops", "pw"); err != nil ||
			!strings.Contains(string(body), `"state": "armed"`) {
			t.Fatalf("not armed: %v %v %s", err, resp, body)
		}
		codes := make(chan int, 2)
		post := func() {
			resp, _, err := srv.request(context.Background(), "POST", "/fail", "ops", "pw")
			if err != nil {
				codes <- -1
				return
			}
			codes <- resp.StatusCode
		}
		go post()
		synctest.Wait() // the first attempt is taking the lock
		if n := l.acquires.Load(); n != 1 {
			t.Fatalf("%d lock attempts, want the first one under way", n)
		}
		go post()
		synctest.Wait() // the second waits for the first
		if len(codes) != 0 || l.acquires.Load() != 1 {
			t.Fatalf("the second /fail did not wait for the first attempt: %d answered, %d lock attempts", len(codes), l.acquires.Load())
		}
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
	})
}
