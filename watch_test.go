package fstaid_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// A monitor whose own rounds never decide (the secondary keeps vetoing,
// as a k-of-n quorum outvotes a monitor cut off from the target) stops
// once another monitor's record appears in a shared lock: it must not
// go on watching a target that has been failed over.
func TestWatchStopsOutvotedMonitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newSharedLock()
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second),
			fstaid.WithSecondary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(l))
		// Bounded, so that a monitor that does not stop fails the test.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		done := runAsync(ctx, m)
		time.Sleep(3500 * time.Millisecond)
		if v := m.Status().LastRound.Verdict; v != fstaid.VerdictSecondaryAlive {
			t.Fatalf("last verdict %s, want %s (vetoed)", v, fstaid.VerdictSecondaryAlive)
		}
		other := &fstaid.Record{State: fstaid.RecordFailingOver, Host: "other-monitor", PID: 42}
		l.takeAsOther(other)
		err := <-done
		var le *fstaid.LockedError
		if !errors.As(err, &le) || le.Record == nil || le.Record.Host != "other-monitor" {
			t.Fatalf("Run = %v, want a *LockedError carrying the other monitor's record", err)
		}
		if h.count() != 0 {
			t.Errorf("handler ran %d times, want 0", h.count())
		}
		if st := m.Status(); st.State != fstaid.StateLocked {
			t.Errorf("state %s, want %s", st.State, fstaid.StateLocked)
		}
		if _, err := m.Fail(t.Context()); !errors.Is(err, fstaid.ErrLocked) {
			t.Errorf("Fail after another monitor's failover = %v, want ErrLocked", err)
		}
	})
}

// The record this monitor creates is announced to its own watch too,
// while its handlers run: that is its failover, not another's.
func TestWatchSeesOwnFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newSharedLock()
		h := &handlerLog{delay: 2 * time.Second}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(l))
		if err := m.Run(t.Context()); !errors.Is(err, fstaid.ErrFailedOver) || errors.Is(err, fstaid.ErrLocked) {
			t.Fatalf("Run = %v, want ErrFailedOver", err)
		}
		if h.count() != 1 {
			t.Errorf("handler ran %d times, want 1", h.count())
		}
		if st := m.Status(); st.State != fstaid.StateFailedOver {
			t.Errorf("state %s, want %s", st.State, fstaid.StateFailedOver)
		}
	})
}

// A manual failover while Run watches: the same.
func TestWatchSeesOwnManualFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newSharedLock()
		h := &handlerLog{delay: time.Second}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, 5*time.Second), fstaid.WithLock(l))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := runAsync(ctx, m)
		time.Sleep(1500 * time.Millisecond)
		if _, err := m.Fail(t.Context()); err != nil {
			t.Fatalf("Fail = %v", err)
		}
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want ErrFailedOver", err)
		}
	})
}
