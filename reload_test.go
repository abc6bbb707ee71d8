package fstaid_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// reconfigureAt calls m.Reconfigure at offset d (from now) and returns a
// channel with its result and when it returned.
type reconfigured struct {
	err error
	at  time.Time
}

func reconfigureAt(m *fstaid.Monitor, d time.Duration, opts ...fstaid.Option) <-chan reconfigured {
	ch := make(chan reconfigured, 1)
	go func() {
		time.Sleep(d)
		err := m.Reconfigure(context.Background(), opts...)
		ch <- reconfigured{err, time.Now()}
	}()
	return ch
}

// A Reconfigure that arrives mid-round is applied when that round ends,
// and the schedule after it runs on the new interval, counted from the
// last round's start.
func TestReconfigureAtRoundBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &script{fn: sleepThen(2*time.Second, nil)}
		b := &script{fn: pass}
		lock := &memLock{}
		handler := fstaid.WithHandler("h", &handlerLog{}, time.Second)
		m := newMonitor(t, fstaid.WithPrimary(a, 5*time.Second), fstaid.WithInterval(10*time.Second), handler, fstaid.WithLock(lock))
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		t0 := time.Now()
		done := runAsync(ctx, m)
		// Rounds with a: 0 (start-up), 10 (running 10-12). At 11 the
		// new options arrive.
		r := <-reconfigureAt(m, 11*time.Second, fstaid.WithPrimary(b, time.Second), fstaid.WithInterval(3*time.Second), handler,
			fstaid.WithLock(lock))
		if r.err != nil {
			t.Fatalf("Reconfigure: %v", r.err)
		}
		if got := r.at.Sub(t0); got != 12*time.Second {
			t.Errorf("Reconfigure returned at %v, want 12s: when the round running at 11s ended", got)
		}
		if st := m.Status(); st.State != fstaid.StateArmed {
			t.Errorf("state %s after Reconfigure, want armed", st.State)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := a.startOffsets(t0); !equalDurations(got, secs(0, 10)) {
			t.Errorf("old primary ran at %v, want 0s and 10s (the round in progress finished with it)", got)
		}
		// 10 + 3, then every 3 s until 20.
		if got := b.startOffsets(t0); !equalDurations(got, secs(13, 16, 19)) {
			t.Errorf("new primary ran at %v, want 13s, 16s, 19s (the new interval from the last round's start)", got)
		}
	})
}

// Rounds that overrun the interval leave no sleep between them; a
// Reconfigure still gets in at the next boundary.
func TestReconfigureWithOverrunningRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &script{fn: sleepThen(3*time.Second, nil)}
		b := &script{fn: pass}
		lock := &memLock{}
		handler := fstaid.WithHandler("h", &handlerLog{}, time.Second)
		m := newMonitor(t, fstaid.WithPrimary(a, 5*time.Second), fstaid.WithInterval(time.Second), handler, fstaid.WithLock(lock))
		ctx, cancel := context.WithTimeout(t.Context(), 9500*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		done := runAsync(ctx, m)
		r := <-reconfigureAt(m, 4*time.Second, fstaid.WithPrimary(b, time.Second), fstaid.WithInterval(2*time.Second), handler)
		if r.err != nil || r.at.Sub(t0) != 6*time.Second {
			t.Errorf("Reconfigure = %v at %v, want nil at 6s (the end of the round started at 3s)", r.err, r.at.Sub(t0))
		}
		<-done
		if got := a.startOffsets(t0); !equalDurations(got, secs(0, 3)) {
			t.Errorf("old primary ran at %v, want 0s, 3s", got)
		}
		// The last round started at 3 s: 3+2 has passed, so at once.
		if got := b.startOffsets(t0); !equalDurations(got, secs(6, 8)) {
			t.Errorf("new primary ran at %v, want 6s, 8s", got)
		}
	})
}

// Invalid options, and options that cannot change, are refused at once
// and change nothing.
func TestReconfigureRefusesAndChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &script{fn: pass}
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(a, time.Second), fstaid.WithInterval(time.Second), fstaid.WithTarget("db1"),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(lock))
		if err := m.Reconfigure(t.Context(), fstaid.WithPrimary(a, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second)); !errors.Is(err, fstaid.ErrReconfigure) || !strings.Contains(err.Error(), "not running") {
			t.Errorf("Reconfigure before Run = %v, want ErrReconfigure: not running", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5500*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		done := runAsync(ctx, m)
		time.Sleep(1500 * time.Millisecond)
		for _, c := range []struct {
			opts []fstaid.Option
			is   error
			says []string
		}{
			{[]fstaid.Option{fstaid.WithPrimary(a, 0), fstaid.WithInterval(0)}, fstaid.ErrInvalidOption,
				[]string{"primary check timeout must be positive", "interval must be positive", "no handler"}},
			{[]fstaid.Option{fstaid.WithPrimary(a, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second),
				fstaid.WithLock(&memLock{}), fstaid.WithTarget("db2"), fstaid.WithLockTimeout(time.Minute), fstaid.WithObserver(func(fstaid.Notice) {})},
				fstaid.ErrReconfigure, []string{"the lock (WithLock)", "the target (WithTarget)", "the lock timeout", "the observers"}},
		} {
			err := m.Reconfigure(t.Context(), c.opts...)
			if !errors.Is(err, c.is) {
				t.Errorf("Reconfigure = %v, want %v", err, c.is)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Reconfigure error %q does not say %q", err, s)
				}
			}
		}
		<-done
		// Unchanged: every second, the same check.
		if got := a.startOffsets(t0); !equalDurations(got, secs(0, 1, 2, 3, 4, 5)) {
			t.Errorf("primary ran at %v, want every second as before", got)
		}
	})
}

// A Reconfigure while a failover runs waits for it, and is refused once
// it has ended for good; later ones are refused at once.
func TestReconfigureRefusedByFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &script{fn: pass}
		b := &script{fn: pass}
		h := &handlerLog{delay: 30 * time.Second}
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(a, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", h, time.Minute), fstaid.WithLock(lock))
		t0 := time.Now()
		done := runAsync(t.Context(), m)
		time.Sleep(2500 * time.Millisecond)
		go m.Fail(context.Background())
		r := <-reconfigureAt(m, time.Second, fstaid.WithPrimary(b, time.Second), fstaid.WithHandler("h", h, time.Minute))
		if !errors.Is(r.err, fstaid.ErrReconfigure) || !errors.Is(r.err, fstaid.ErrFailedOver) {
			t.Errorf("Reconfigure during the failover = %v, want ErrReconfigure and ErrFailedOver", r.err)
		}
		if got := r.at.Sub(t0); got != 32500*time.Millisecond {
			t.Errorf("Reconfigure returned at %v, want 32.5s, when the handler returned", got)
		}
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Errorf("Run: %v", err)
		}
		if b.calls != 0 {
			t.Errorf("the new primary ran %d times", b.calls)
		}
		before := time.Now()
		err := m.Reconfigure(t.Context(), fstaid.WithPrimary(b, time.Second), fstaid.WithHandler("h", h, time.Minute))
		if !errors.Is(err, fstaid.ErrReconfigure) || !errors.Is(err, fstaid.ErrFailedOver) || time.Since(before) != 0 {
			t.Errorf("Reconfigure after the failover = %v after %v, want ErrReconfigure and ErrFailedOver at once", err, time.Since(before))
		}
	})
}

// A Reconfigure that reaches the loop while it sleeps between rounds and
// a manual failover runs waits for that failover (the gate): the running
// failover keeps the handlers it began with, and the reconfiguration is
// then refused, never applied halfway through a failover.
func TestReconfigureWaitsForManualFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &script{fn: pass}
		old := &handlerLog{delay: 30 * time.Second}
		repl := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(a, time.Second), fstaid.WithInterval(10*time.Second),
			fstaid.WithHandler("h", old, time.Minute), fstaid.WithLock(&memLock{}))
		t0 := time.Now()
		done := runAsync(t.Context(), m)
		time.Sleep(2 * time.Second) // the loop sleeps until the round at 10 s
		go m.Fail(context.Background())
		r := <-reconfigureAt(m, time.Second, fstaid.WithPrimary(a, time.Second), fstaid.WithHandler("h", repl, time.Minute))
		if !errors.Is(r.err, fstaid.ErrReconfigure) || !errors.Is(r.err, fstaid.ErrFailedOver) {
			t.Errorf("Reconfigure during a manual failover = %v, want ErrReconfigure and ErrFailedOver", r.err)
		}
		if got := r.at.Sub(t0); got != 32*time.Second {
			t.Errorf("Reconfigure returned at %v, want 32s, when the handler returned", got)
		}
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Errorf("Run: %v", err)
		}
		if old.count() != 1 || repl.count() != 0 {
			t.Errorf("handler runs: the old one %d, the new one %d; want 1 and 0", old.count(), repl.count())
		}
	})
}

// An unarmed Monitor stays unarmed, and its next start-up round uses
// the new checks: a fixed check arms it.
func TestReconfigureUnarmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		broken := &script{fn: fail}
		fixed := &script{fn: pass}
		handler := fstaid.WithHandler("h", &handlerLog{}, time.Second)
		m := newMonitor(t, fstaid.WithPrimary(broken, time.Second), fstaid.WithInterval(5*time.Second), handler,
			fstaid.WithLock(&memLock{}), fstaid.WithStartupCheck(fstaid.StartupCheckWait))
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		t0 := time.Now()
		done := runAsync(ctx, m)
		r := <-reconfigureAt(m, 6*time.Second, fstaid.WithPrimary(fixed, time.Second), handler,
			fstaid.WithInterval(2*time.Second), fstaid.WithStartupCheck(fstaid.StartupCheckWait))
		if r.err != nil || r.at.Sub(t0) != 6*time.Second {
			t.Fatalf("Reconfigure = %v at %v, want nil at 6s (between start-up rounds)", r.err, r.at.Sub(t0))
		}
		if st := m.Status(); st.State != fstaid.StateUnarmed {
			t.Errorf("state %s right after Reconfigure, want still unarmed", st.State)
		}
		time.Sleep(2 * time.Second)
		if st := m.Status(); st.State != fstaid.StateArmed {
			t.Errorf("state %s at 8s, want armed by the start-up round at 7s (5 + 2)", st.State)
		}
		<-done
		if got := broken.startOffsets(t0); !equalDurations(got, secs(0, 5)) {
			t.Errorf("broken check ran at %v, want 0s, 5s", got)
		}
		if got := fixed.startOffsets(t0); len(got) == 0 || got[0] != 7*time.Second {
			t.Errorf("fixed check ran at %v, want first at 7s", got)
		}
	})
}

// Reconfigure while other goroutines read the bounds and the status:
// the race detector checks that the settings are handed over safely.
func TestReconfigureConcurrentReaders(t *testing.T) {
	lock := &memLock{}
	opts := func(d time.Duration) []fstaid.Option {
		return []fstaid.Option{fstaid.WithPrimary(&script{fn: pass}, d), fstaid.WithInterval(time.Millisecond),
			fstaid.WithHandler("h", &handlerLog{}, d), fstaid.WithLock(lock)}
	}
	m := newMonitor(t, opts(time.Second)...)
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, m)
	waitState(t, m, fstaid.StateArmed, 10*time.Second)
	stop := make(chan struct{})
	readers := make(chan struct{})
	go func() {
		defer close(readers)
		for {
			select {
			case <-stop:
				return
			default:
				_ = m.RoundBound() + m.FailoverBound()
				_ = m.Status()
			}
		}
	}()
	for i := range 50 {
		if err := m.Reconfigure(t.Context(), opts(time.Duration(i+1)*time.Second)...); err != nil {
			t.Fatalf("Reconfigure %d: %v", i, err)
		}
	}
	if got, want := m.FailoverBound(), 2*fstaid.DefaultLockTimeout+50*time.Second+500*time.Millisecond+time.Second; got != want {
		t.Errorf("FailoverBound = %v after the last Reconfigure, want %v (its handler's timeout)", got, want)
	}
	close(stop)
	<-readers
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Readiness is reconfigured with the rest: the runs after it check what
// the new options give.
func TestReconfigureReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		calls := map[string]int{}
		probe := func(name string) fstaid.ReadinessCheck {
			return fstaid.ReadinessFunc(func(context.Context) []fstaid.Problem {
				mu.Lock()
				defer mu.Unlock()
				calls[name]++
				return nil
			})
		}
		handler := fstaid.WithHandler("h", &handlerLog{}, time.Second)
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second), handler,
			fstaid.WithLock(lock), fstaid.WithReadiness(2*time.Second, probe("old")))
		ctx, cancel := context.WithTimeout(t.Context(), 12500*time.Millisecond)
		defer cancel()
		done := runAsync(ctx, m)
		time.Sleep(6500 * time.Millisecond)
		mu.Lock()
		before := calls["old"]
		mu.Unlock()
		if err := m.Reconfigure(t.Context(), fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second), handler,
			fstaid.WithReadiness(2*time.Second, probe("new"))); err != nil {
			t.Fatal(err)
		}
		<-done
		mu.Lock()
		defer mu.Unlock()
		if before == 0 || calls["old"] != before || calls["new"] < 2 {
			t.Errorf("readiness calls %v (old %d before Reconfigure): want old only before, new after", calls, before)
		}
	})
}
