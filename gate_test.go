package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// target is a primary check against a target that can die: each check
// takes 0.5 s and then reports whether the target is alive at that
// moment.
type target struct{ dead atomic.Bool }

func (tg *target) Check(ctx context.Context) error {
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	if tg.dead.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// watchFailover samples the Monitor every 100 ms until the handler
// returns and fails the test (once) if the state is not failing-over or
// the deadline is already past (the watchdog would kill the handler).
func watchFailover(t *testing.T, m *fstaid.Monitor, handlerDone <-chan struct{}) {
	t.Helper()
	for {
		select {
		case <-handlerDone:
			return
		case <-time.After(100 * time.Millisecond):
		}
		select {
		case <-handlerDone:
			return
		default:
		}
		st := m.Status()
		if st.State != fstaid.StateFailingOver {
			t.Errorf("at %v: state %s (%s), want %s", time.Now(), st.State, st.Reason, fstaid.StateFailingOver)
			<-handlerDone
			return
		}
		if !time.Now().Before(st.Deadline) {
			t.Errorf("at %v: deadline %v passed while the handler runs: the watchdog would kill it", time.Now(), st.Deadline)
			<-handlerDone
			return
		}
	}
}

// Issue 13, item 1: a manual failover during a round, whose target dies
// right after (a planned switchover whose handler stops the old active).
// The loop must neither publish a state nor pull the watchdog deadline
// before the running handler's bound.
func TestManualFailoverOwnsStateAndDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &target{}
		started, handlerDone := make(chan struct{}), make(chan struct{})
		h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			close(started)
			defer close(handlerDone)
			time.Sleep(60 * time.Second)
			return nil
		})
		m := newMonitor(t, fstaid.WithPrimary(tg, 2*time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("switchover", h, 120*time.Second), fstaid.WithLock(&memLock{}))
		done := runAsync(t.Context(), m)
		time.Sleep(1200 * time.Millisecond) // round 2 (start-up is round 1) is running
		failed := make(chan error, 1)
		go func() {
			_, err := m.Fail(context.Background())
			failed <- err
		}()
		<-started
		time.Sleep(100 * time.Millisecond)
		tg.dead.Store(true)
		watchFailover(t, m, handlerDone)
		if err := <-failed; err != nil {
			t.Fatalf("Fail = %v", err)
		}
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want the manual failover", err)
		}
	})
}

// The same for a failover the loop started while the rounds went on:
// the deadline covers every handler's bound.
func TestAutomaticFailoverDeadlineCoversHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handlerDone := make(chan struct{})
		h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			defer close(handlerDone)
			time.Sleep(90 * time.Second)
			return nil
		})
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second),
			fstaid.WithHandler("slow", h, 100*time.Second), fstaid.WithLock(&memLock{}))
		done := runAsync(t.Context(), m)
		time.Sleep(1100 * time.Millisecond)
		watchFailover(t, m, handlerDone)
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v", err)
		}
	})
}

// lostReplyLock is a shared lock (LockWatcher) whose first Acquires
// commit the record and then report a timeout, as etcd does when the
// creation's reply is lost. Like the etcd lock, it recognises its own
// record by Record.ID.
type lostReplyLock struct {
	sharedLock
	lose int // Acquires that commit but fail
}

func (l *lostReplyLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	l.memLock.mu.Lock()
	if l.memLock.rec != nil && rec.ID != "" && l.memLock.rec.ID == rec.ID {
		c := *rec
		l.memLock.rec = &c
		l.memLock.acquired++
		l.memLock.mu.Unlock()
		return nil // our own earlier creation
	}
	lose := l.lose > 0 && l.memLock.rec == nil
	if lose {
		l.lose--
	}
	l.memLock.mu.Unlock()
	err := l.sharedLock.Acquire(ctx, rec)
	if err == nil && lose {
		return fmt.Errorf("%w: creating the record: context deadline exceeded", fstaid.ErrLockUnavailable)
	}
	return err
}

// Issue 13, item 2: the creation commits but its reply is lost; the
// monitor's own watcher then announces the record. It is this monitor's
// record: the handlers run, once, and no monitor stops as locked.
func TestLostAcquireReplyOwnRecordRunsHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &lostReplyLock{sharedLock: *newSharedLock(), lose: 1}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(l))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err := m.Run(ctx)
		var fe *fstaid.FailoverError
		if !errors.As(err, &fe) || fe.Err != nil {
			t.Fatalf("Run = %v, want this monitor's failover", err)
		}
		if h.count() != 1 {
			t.Errorf("handler ran %d times, want 1", h.count())
		}
		if rec := l.record(); rec.State != fstaid.RecordDone || rec.ID == "" {
			t.Errorf("record %+v, want done with an ID", rec)
		}
	})
}

// A manual failover whose reply was lost: the next attempt, here the
// loop's own when the target dies, is the same failover (same ID).
func TestLostAcquireReplyManualThenAutomatic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No Watch method: the rounds, not the watcher, retry.
		l := &lostReplyLock{sharedLock: *newSharedLock(), lose: 1}
		h := &handlerLog{}
		tg := &target{}
		m := newMonitor(t, fstaid.WithPrimary(tg, 2*time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(noWatch{l}))
		done := runAsync(t.Context(), m)
		time.Sleep(1200 * time.Millisecond)
		if _, err := m.Fail(t.Context()); !errors.Is(err, fstaid.ErrLockUnavailable) {
			t.Fatalf("Fail = %v, want ErrLockUnavailable (reply lost)", err)
		}
		tg.dead.Store(true)
		err := <-done
		if !errors.Is(err, fstaid.ErrFailedOver) || errors.Is(err, fstaid.ErrLocked) {
			t.Fatalf("Run = %v, want this monitor's failover", err)
		}
		if h.count() != 1 {
			t.Errorf("handler ran %d times, want 1", h.count())
		}
	})
}

// noWatch hides a lock's Watch method.
type noWatch struct{ l *lostReplyLock }

func (n noWatch) Load(ctx context.Context) (*fstaid.Record, error) { return n.l.Load(ctx) }
func (n noWatch) Acquire(ctx context.Context, rec *fstaid.Record) error {
	return n.l.Acquire(ctx, rec)
}
func (n noWatch) Update(ctx context.Context, rec *fstaid.Record) error { return n.l.Update(ctx, rec) }
func (n noWatch) Done() <-chan struct{}                                { return nil }

// A Fail whose reply was lost before Run started: Run finds its own
// record at start-up and finishes that failover instead of refusing to
// start as locked.
func TestLostAcquireReplyBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &lostReplyLock{sharedLock: *newSharedLock(), lose: 1}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(noWatch{l}))
		if _, err := m.Fail(t.Context()); !errors.Is(err, fstaid.ErrLockUnavailable) {
			t.Fatalf("Fail = %v, want ErrLockUnavailable (reply lost)", err)
		}
		if err := m.Run(t.Context()); !errors.Is(err, fstaid.ErrFailedOver) || errors.Is(err, fstaid.ErrLocked) {
			t.Fatalf("Run = %v, want the failover finished", err)
		}
		if h.count() != 1 {
			t.Errorf("handler ran %d times, want 1", h.count())
		}
	})
}

// notDurableLock publishes the record and then reports that the step
// making it durable failed, as FileLock does when the directory fsync
// fails after link(2).
type notDurableLock struct{ memLock }

func (l *notDurableLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	if err := l.memLock.Acquire(ctx, rec); err != nil {
		return err
	}
	return fmt.Errorf("fstaid: lock mem published but not durable: fsync /var/lib/fstaidd: input/output error: %w", fstaid.ErrLockNotDurable)
}

// Issue 13, item 4: a lock that is taken but not durable is taken: the
// handlers run, and the record says what went wrong.
func TestLockTakenButNotDurableFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &notDurableLock{}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(l))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := m.Run(ctx); !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want a failover", err)
		}
		if h.count() != 1 {
			t.Fatalf("handler ran %d times, want 1", h.count())
		}
		rec := l.record()
		if rec.State != fstaid.RecordDone || len(rec.Warnings) == 0 {
			t.Errorf("record %+v, want done with a durability warning", rec)
		}
	})
}

// hangingLock's Load blocks, ignoring its context, as a hung NFS mount
// does.
type hangingLock struct {
	memLock
	release chan struct{}
}

func (l *hangingLock) Load(ctx context.Context) (*fstaid.Record, error) {
	<-l.release
	return nil, nil
}

// Issue 13, item 7: the start-up lock check has a deadline too, so the
// watchdog stops pinging a monitor stuck in it.
func TestDeadlineCoversStartupLockCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &hangingLock{release: make(chan struct{})}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(l),
			fstaid.WithLockTimeout(5*time.Second))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(time.Second)
		if d := m.Status().Deadline; d.IsZero() || !time.Now().Before(d) {
			t.Errorf("deadline %v during the lock check, want one ahead", d)
		}
		time.Sleep(10 * time.Second)
		if d := m.Status().Deadline; d.IsZero() || time.Now().Before(d) {
			t.Errorf("deadline %v still ahead although the lock check hangs", d)
		}
		close(l.release)
		cancel()
		<-done
	})
}

// Issue 18, item 9: Deadline is zero whenever Run is not running, also
// after a Fail before Run, during one, and after one that found the lock
// unavailable.
func TestFailWithoutRunLeavesNoDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &memLock{failWith: fmt.Errorf("%w: unreachable", fstaid.ErrLockUnavailable)}
		h := &handlerLog{delay: time.Second}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(l))
		if _, err := m.Fail(t.Context()); !errors.Is(err, fstaid.ErrLockUnavailable) {
			t.Fatalf("Fail = %v", err)
		}
		if d := m.Status().Deadline; !d.IsZero() {
			t.Errorf("deadline %v after an unavailable Fail without Run, want zero", d)
		}
		l.mu.Lock()
		l.failWith = nil
		l.mu.Unlock()
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := m.Fail(t.Context()); err != nil {
				t.Errorf("Fail = %v", err)
			}
		})
		time.Sleep(500 * time.Millisecond)
		if d := m.Status().Deadline; !d.IsZero() {
			t.Errorf("deadline %v during a Fail without Run, want zero", d)
		}
		wg.Wait()
		if d := m.Status().Deadline; !d.IsZero() {
			t.Errorf("deadline %v after a Fail without Run, want zero", d)
		}
	})
}

// flakyUpdateLock fails its first Updates, as an etcd without a quorum
// for a moment, or a lock directory full for a moment, does.
type flakyUpdateLock struct {
	memLock
	failUpdates int
	calls       int
}

func (l *flakyUpdateLock) Update(ctx context.Context, rec *fstaid.Record) error {
	l.memLock.mu.Lock()
	l.calls++
	fail := l.failUpdates > 0
	if fail {
		l.failUpdates--
	}
	l.memLock.mu.Unlock()
	if fail {
		return fmt.Errorf("%w: updating the record: no leader", fstaid.ErrLockUnavailable)
	}
	return l.memLock.Update(ctx, rec)
}

// The failover's outcome reaches the record although the lock refused
// the first writes: retried within the lock timeout. Found by the fault
// campaign (etcd/3010: an etcd member killed as the handler finished left
// the record failing-over, read as an interrupted failover).
func TestRecordUpdateRetriedWithinLockTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &flakyUpdateLock{failUpdates: 5}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(l),
			fstaid.WithLockTimeout(10*time.Second))
		if _, err := m.Fail(t.Context()); err != nil {
			t.Fatalf("Fail = %v", err)
		}
		if rec := l.record(); rec.State != fstaid.RecordDone || l.calls != 6 {
			t.Errorf("record %+v after %d Updates, want done after 6", rec, l.calls)
		}
		// An Update that never succeeds gives up at the lock timeout.
		l2 := &flakyUpdateLock{failUpdates: 1 << 30}
		m2 := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(l2),
			fstaid.WithLockTimeout(10*time.Second))
		start := time.Now()
		if _, err := m2.Fail(t.Context()); err != nil {
			t.Fatalf("Fail = %v", err)
		}
		if d := time.Since(start); d < 10*time.Second || d > 11*time.Second {
			t.Errorf("gave up after %v, want the lock timeout (10 s)", d)
		}
	})
}

// A Fail whose context ended before its failover began never begins,
// even when the gate is free at that moment. Found by the model
// (contrib/model, P2): a /fail queued when fstaidd was told to stop began
// a failover that the stop then cut short.
func TestFailWithEndedContextNeverBegins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for range 64 {
			l := &memLock{}
			h := &handlerLog{}
			m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
				fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(l))
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := m.Fail(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Fail with an ended context = %v, want context.Canceled", err)
			}
			if h.count() != 0 || l.record() != nil {
				t.Fatalf("handler ran %d times, record %+v: a Fail whose caller gave up began", h.count(), l.record())
			}
		}
	})
}
