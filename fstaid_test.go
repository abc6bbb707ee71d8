package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// Scheduling tests run under testing/synctest: time is fake, exact and
// instant, and the bubble fails the test if a goroutine is left behind.

func TestIntervalIsStartToStart(t *testing.T) {
	// A 0.5 s check with a 1 s interval runs every 1 s (the original
	// slept after the round and drifted to 1.5 s).
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		p := &script{fn: sleepThen(500*time.Millisecond, nil)}
		m := newMonitor(t, fstaid.WithPrimary(p, 2*time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(5*time.Second + 100*time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
		// The start-up check at 0, then a round every second.
		if got, want := p.startOffsets(t0), secs(0, 1, 2, 3, 4, 5); !equalDurations(got, want) {
			t.Errorf("check starts = %v, want %v", got, want)
		}
		// The round at 5 s was cancelled mid-check: it does not count.
		if st := m.Status(); st.State != fstaid.StateStopped || st.Rounds != 5 {
			t.Errorf("status = %s after %d rounds, want stopped after 5", st.State, st.Rounds)
		}
	})
}

func TestSlowRoundDelaysNextWithoutOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		p := &script{fn: sleepThen(1500*time.Millisecond, nil)}
		m := newMonitor(t, fstaid.WithPrimary(p, 2*time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(4*time.Second + 100*time.Millisecond)
		cancel()
		<-done
		if got, want := p.startOffsets(t0), secs(0, 1.5, 3); !equalDurations(got, want) {
			t.Errorf("check starts = %v, want %v (next round right after a slow one)", got, want)
		}
	})
}

func TestAttemptsAndAttemptInterval(t *testing.T) {
	tests := []struct {
		attempts int
		pause    time.Duration
		want     []time.Duration // primary starts within the failing round
		handler  time.Duration   // handler start after the round start
	}{
		{3, 200 * time.Millisecond, secs(0, 0.2, 0.4), 400 * time.Millisecond},
		{3, 0, secs(0, 0, 0), 0},
		{1, time.Second, secs(0), 0},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			p := &script{fn: failFrom(2)} // the start-up check passes
			h := &handlerLog{}
			m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithInterval(time.Second),
				fstaid.WithMaxAttempts(tt.attempts), fstaid.WithAttemptInterval(tt.pause),
				fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
			t0 := time.Now()
			err := m.Run(t.Context())
			if !errors.Is(err, fstaid.ErrFailedOver) || errors.Is(err, fstaid.ErrHandlerFailed) {
				t.Fatalf("attempts=%d pause=%v: Run = %v, want a clean failover", tt.attempts, tt.pause, err)
			}
			round := t0.Add(time.Second)
			if got := p.startOffsets(round)[1:]; !equalDurations(got, tt.want) {
				t.Errorf("attempts=%d pause=%v: attempt starts = %v, want %v", tt.attempts, tt.pause, got, tt.want)
			}
			if got := h.times[0].Sub(round); got != tt.handler {
				t.Errorf("attempts=%d pause=%v: handler started %v after the round, want %v (no pause after the last attempt)",
					tt.attempts, tt.pause, got, tt.handler)
			}
			ev := h.events[0]
			if ev.Reason != fstaid.ReasonAuto || ev.Primary.Attempts != tt.attempts || ev.Primary.ExitStatus != 1 {
				t.Errorf("event = %+v, want auto, %d attempts, exit 1", ev, tt.attempts)
			}
			if got := strings.Join(ev.Args(), " "); got != "1 false -1 false" {
				t.Errorf("handler args = %q, want %q", got, "1 false -1 false")
			}
		})
	}
}

func TestCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &script{fn: func(ctx context.Context, call int) error {
			if call == 1 {
				return nil
			}
			return blockUntilDone(ctx, call)
		}}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(p, 300*time.Millisecond), fstaid.WithMaxAttempts(2),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		t0 := time.Now()
		err := m.Run(t.Context())
		if !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want failover", err)
		}
		ev := h.events[0]
		if !ev.Primary.TimedOut || ev.Primary.ExitStatus != -1 || ev.Primary.Duration != 300*time.Millisecond {
			t.Errorf("primary = %+v, want timed out, exit -1, 300ms", ev.Primary)
		}
		if got := strings.Join(ev.Args(), " "); got != "-1 true -1 false" {
			t.Errorf("args = %q", got)
		}
		if got, want := h.times[0].Sub(t0), time.Second+600*time.Millisecond; got != want {
			t.Errorf("handler at %v, want %v", got, want)
		}
	})
}

func TestSelfCheckFailsFirstStopsWithoutFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		self := &script{fn: failFrom(2)}
		p := &script{fn: fail}
		p.fn = failFrom(2)
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithSelf(self, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		err := m.Run(t.Context())
		var re *fstaid.RoundError
		if !errors.Is(err, fstaid.ErrSelfCheck) || !errors.As(err, &re) || re.Round.Verdict != fstaid.VerdictSelfCheckFailed {
			t.Fatalf("Run = %v, want ErrSelfCheck with the round", err)
		}
		if h.count() != 0 || p.calls != 1 {
			t.Errorf("handler ran %d times, primary %d times; want 0 and 1 (start-up only)", h.count(), p.calls)
		}
	})
}

func TestContinueIfSelfCheckFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Self fails in rounds 1 and 2 (calls 2, 3), then passes.
		self := &script{fn: func(_ context.Context, n int) error {
			if n == 2 || n == 3 {
				return errors.New("isolated")
			}
			return nil
		}}
		p := &script{fn: pass}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithSelf(self, time.Second),
			fstaid.WithContinueIfSelfCheckFailed(true),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(3*time.Second + 100*time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		// Primary ran at start-up and in round 3 only: rounds 1 and 2 were skipped.
		if p.calls != 2 {
			t.Errorf("primary ran %d times, want 2", p.calls)
		}
		if v := m.Status().LastRound.Verdict; v != fstaid.VerdictHealthy {
			t.Errorf("last verdict %s, want healthy", v)
		}
	})
}

func TestSelfCheckFailsAfterKeepsMonitoring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Self passes at start-up and step 1, fails at step 4 of round 1.
		self := &script{fn: func(_ context.Context, n int) error {
			if n == 3 {
				return errors.New("isolated")
			}
			return nil
		}}
		p := &script{fn: failFrom(2)}
		h := &handlerLog{}
		var verdicts []fstaid.Verdict
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithSelf(self, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithObserver(func(n fstaid.Notice) {
				if n.Kind == fstaid.NoticeRound {
					verdicts = append(verdicts, n.Round.Verdict)
				}
			}))
		err := m.Run(t.Context())
		if !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want failover in round 2", err)
		}
		want := []fstaid.Verdict{fstaid.VerdictStartupPassed, fstaid.VerdictSelfFailedAfter, fstaid.VerdictFailover}
		if len(verdicts) != len(want) || verdicts[1] != want[1] || verdicts[2] != want[2] {
			t.Errorf("verdicts = %v, want %v", verdicts, want)
		}
		if h.count() != 1 || h.events[0].Self == nil || !h.events[0].Self.Passed {
			t.Errorf("handler calls %d, self in event %+v", h.count(), h.events[0].Self)
		}
	})
}

func TestSecondaryVeto(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &script{fn: failFrom(2)}
		sec := &script{fn: pass}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithSecondary(sec, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(5*time.Second + 100*time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil: the secondary says the target lives", err)
		}
		if h.count() != 0 {
			t.Errorf("handler ran %d times, want 0", h.count())
		}
		if v := m.Status().LastRound.Verdict; v != fstaid.VerdictSecondaryAlive {
			t.Errorf("last verdict %s, want %s", v, fstaid.VerdictSecondaryAlive)
		}
	})
}

func TestSecondaryConfirmsFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &script{fn: failFrom(2)}
		sec := &script{fn: func(ctx context.Context, n int) error {
			if n == 1 {
				return nil
			}
			return &fstaid.CheckError{ExitStatus: 7, Err: errors.New("proxy refused")}
		}}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithSecondary(sec, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		if err := m.Run(t.Context()); !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v", err)
		}
		if got := strings.Join(h.events[0].Args(), " "); got != "1 false 7 false" {
			t.Errorf("args = %q, want %q", got, "1 false 7 false")
		}
	})
}

func TestStartupCheckFailReturnsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: fail}, time.Second),
			fstaid.WithSecondary(&script{fn: fail}, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		err := m.Run(t.Context())
		if !errors.Is(err, fstaid.ErrStartupCheck) {
			t.Fatalf("Run = %v, want ErrStartupCheck", err)
		}
		if !strings.Contains(err.Error(), "primary check failed") || !strings.Contains(err.Error(), "secondary check failed") {
			t.Errorf("error %q should name every failing check", err)
		}
		if h.count() != 0 {
			t.Error("handler ran on a start-up failure")
		}
	})
}

func TestStartupCheckWaitUnarmedThenArms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		// Fails for the first three start-up rounds, then passes for good.
		p := &script{fn: func(_ context.Context, n int) error {
			if n <= 3 {
				return errors.New("not yet")
			}
			return nil
		}}
		var kinds []fstaid.NoticeKind
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithStartupCheck(fstaid.StartupCheckWait),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithObserver(func(n fstaid.Notice) {
				if n.Kind != fstaid.NoticeRound && n.Kind != fstaid.NoticeCheck {
					kinds = append(kinds, n.Kind)
				}
			}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(2500 * time.Millisecond)
		st := m.Status()
		if st.State != fstaid.StateUnarmed || !strings.Contains(st.Reason, "primary check failed") {
			t.Errorf("at 2.5s: status %s %q, want unarmed naming the primary check", st.State, st.Reason)
		}
		time.Sleep(2 * time.Second)
		if st := m.Status(); st.State != fstaid.StateArmed {
			t.Errorf("at 4.5s: status %s, want armed", st.State)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := p.startOffsets(t0), secs(0, 1, 2, 3, 4); !equalDurations(got, want) {
			t.Errorf("check starts %v, want %v", got, want)
		}
		want := []fstaid.NoticeKind{fstaid.NoticeStarted, fstaid.NoticeUnarmed, fstaid.NoticeUnarmed, fstaid.NoticeUnarmed, fstaid.NoticeArmed, fstaid.NoticeStopped}
		if len(kinds) != len(want) {
			t.Fatalf("notices %v, want %v", kinds, want)
		}
		for i := range want {
			if kinds[i] != want[i] {
				t.Fatalf("notices %v, want %v", kinds, want)
			}
		}
	})
}

func TestManualFailWhileUnarmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &handlerLog{}
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: blockUntilDone}, 10*time.Second),
			fstaid.WithStartupCheck(fstaid.StartupCheckWait),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(lock))
		done := runAsync(t.Context(), m)
		time.Sleep(1500 * time.Millisecond) // inside the first start-up check
		rec, err := m.Fail(t.Context(), fstaid.WithExitCode(3), fstaid.WithRequestedBy("alice"), fstaid.WithComment("disk failing\nsee ticket 42"))
		if err != nil || rec == nil || rec.State != fstaid.RecordDone {
			t.Fatalf("Fail = %+v, %v; want a done record", rec, err)
		}
		// The loop stops at once: its in-flight check is cancelled.
		err = <-done
		var fe *fstaid.FailoverError
		if !errors.As(err, &fe) || fe.Err != nil {
			t.Fatalf("Run = %v, want the manual failover", err)
		}
		if got := time.Since(rec.Time); got != 0 {
			t.Errorf("Run returned %v after the failover, want at once", got)
		}
		ev := h.events[0]
		if ev.Reason != fstaid.ReasonManual || ev.RequestedBy != "alice" || strings.Join(ev.Args(), " ") != "3 false 3 false" {
			t.Errorf("event %+v args %v", ev, ev.Args())
		}
		if lock.record().State != fstaid.RecordDone || lock.updates != 1 {
			t.Errorf("lock record %+v after %d updates", lock.record(), lock.updates)
		}
		// The comment is the record's, from the first write on; the
		// handlers' environment does not carry it.
		if rec.Comment != "disk failing\nsee ticket 42" || lock.record().Comment != rec.Comment || lock.first.Comment != rec.Comment {
			t.Errorf("comment: returned %q, stored %q, first written %q", rec.Comment, lock.record().Comment, lock.first.Comment)
		}
		if env := strings.Join(ev.Env(), "\n"); strings.Contains(env, "ticket") {
			t.Errorf("the comment reached the handler environment:\n%s", env)
		}
	})
}

func TestCancelDuringFailoverFinishesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var handlerCtxErr error
		slow := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			time.Sleep(5 * time.Second)
			handlerCtxErr = ctx.Err()
			return nil
		})
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: fail}, time.Second),
			fstaid.WithStartupCheck(fstaid.StartupCheckOff),
			fstaid.WithHandler("slow", slow, time.Minute), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(time.Second)
		cancel() // SIGTERM mid-failover
		err := <-done
		if !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want the failover reported, not the cancellation", err)
		}
		if handlerCtxErr != nil {
			t.Errorf("handler context ended: %v", handlerCtxErr)
		}
	})
}

func TestCancelDuringManualFailoverWaitsForIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &handlerLog{delay: 3 * time.Second}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("h", h, time.Minute), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(1500 * time.Millisecond)
		failed := make(chan error, 1)
		go func() {
			_, err := m.Fail(context.Background())
			failed <- err
		}()
		time.Sleep(time.Second)
		cancel()
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v, want the manual failover in flight to be reported", err)
		}
		if err := <-failed; err != nil {
			t.Fatalf("Fail = %v", err)
		}
	})
}

func TestHandlersRunInOrderWithOwnTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var order []string
		var mu sync.Mutex
		mk := func(name string, d time.Duration, err error) fstaid.Handler {
			return fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				select {
				case <-time.After(d):
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: fail}, time.Second),
			fstaid.WithStartupCheck(fstaid.StartupCheckOff), fstaid.WithLock(lock),
			fstaid.WithHandler("eip", mk("eip", time.Hour, nil), 2*time.Second),
			fstaid.WithHandler("broken", mk("broken", 0, errors.New("boom")), time.Second),
			fstaid.WithHandler("notify", mk("notify", 100*time.Millisecond, nil), time.Second),
			fstaid.WithHandler("panics", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { panic("oops") }), time.Second))
		err := m.Run(t.Context())
		var fe *fstaid.FailoverError
		if !errors.As(err, &fe) || !errors.Is(err, fstaid.ErrHandlerFailed) {
			t.Fatalf("Run = %v, want a failover with handler failures", err)
		}
		if got := strings.Join(order, ","); got != "eip,broken,notify" {
			t.Errorf("order %s", got)
		}
		hs := fe.Record.Handlers
		if len(hs) != 4 || !hs[0].TimedOut || hs[0].Duration != 2*time.Second || hs[1].Error == "" ||
			hs[2].Error != "" || hs[2].Duration != 100*time.Millisecond || !strings.Contains(hs[3].Error, "panicked") {
			t.Errorf("outcomes %+v", hs)
		}
		for _, want := range []string{"handler eip: timed out", "handler broken: boom", "handler panics: handler panicked: oops"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if rec := lock.record(); rec.State != fstaid.RecordHandlerFailed || len(rec.Handlers) != 4 {
			t.Errorf("stored record %+v", rec)
		}
	})
}

func TestCheckPanicCountsAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &script{fn: func(_ context.Context, n int) error {
			if n > 1 {
				panic("nil map")
			}
			return nil
		}}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}))
		if err := m.Run(t.Context()); !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run = %v", err)
		}
		if e := h.events[0].Primary.Error; !strings.Contains(e, "panicked: nil map") {
			t.Errorf("primary error %q", e)
		}
	})
}

func TestLockedAtStartRunsNoCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &script{fn: pass}
		lock := &memLock{rec: &fstaid.Record{State: fstaid.RecordDone, Host: "old", Time: time.Now()}}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(lock))
		err := m.Run(t.Context())
		var le *fstaid.LockedError
		if !errors.As(err, &le) || !errors.Is(err, fstaid.ErrLocked) || le.Record.Host != "old" {
			t.Fatalf("Run = %v, want *LockedError with the record", err)
		}
		if !strings.Contains(err.Error(), "mem") || !strings.Contains(err.Error(), "remove the record to re-arm") {
			t.Errorf("error %q must name the lock and how to re-arm", err)
		}
		if p.calls != 0 {
			t.Errorf("a check ran %d times while locked", p.calls)
		}
		if st := m.Status(); st.State != fstaid.StateLocked || st.Record == nil {
			t.Errorf("status %+v", st)
		}
	})
}

func TestLockUnavailableFailsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memLock{failWith: errors.New("disk on fire")}
		h := &handlerLog{}
		p := &script{fn: failFrom(2)}
		unavailable := 0
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(lock),
			fstaid.WithObserver(func(n fstaid.Notice) {
				if n.Kind == fstaid.NoticeLockUnavailable && errors.Is(n.Err, fstaid.ErrLockUnavailable) {
					unavailable++
				}
			}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(3*time.Second + time.Millisecond)
		if _, err := m.Fail(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) {
			t.Errorf("Fail = %v, want ErrLockUnavailable", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil: no lock, no failover, monitoring went on", err)
		}
		if h.count() != 0 {
			t.Errorf("a handler ran without the lock")
		}
		if p.calls < 4 {
			t.Errorf("monitoring stopped after %d checks", p.calls)
		}
		if unavailable < 3 {
			t.Errorf("%d lock-unavailable notices, want one per failed attempt", unavailable)
		}
	})
}

func TestDeadlineTracksProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		p := &script{fn: func(ctx context.Context, n int) error {
			if n == 3 {
				<-hang // a check that ignores its context
			}
			return nil
		}}
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		bound := m.RoundBound()
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		for i := 0; i < 20; i++ {
			time.Sleep(100 * time.Millisecond)
			if d := m.Status().Deadline; !time.Now().Before(d) {
				t.Fatalf("at %d: deadline %v not ahead of now while healthy", i, d)
			}
		}
		time.Sleep(bound + time.Second)
		if d := m.Status().Deadline; time.Now().Before(d) {
			t.Errorf("deadline %v still ahead although the loop hangs", d)
		}
		close(hang)
		cancel()
		<-done
		if !m.Status().Deadline.IsZero() {
			t.Error("deadline set after Run returned")
		}
	})
}

type reportingHandler struct{ moved string }

func (h *reportingHandler) Handle(context.Context, *fstaid.Event) error {
	h.moved = "eipalloc-1: i-active -> i-standby"
	return nil
}

func (h *reportingHandler) Report() any { return map[string]string{"moved": h.moved} }

func TestHandlerReportInRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithHandler("eip", &reportingHandler{}, time.Second), fstaid.WithLock(lock))
		rec, err := m.Fail(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		d, _ := rec.Handlers[0].Detail.(map[string]string)
		if d["moved"] != "eipalloc-1: i-active -> i-standby" || lock.record().Handlers[0].Detail == nil {
			t.Errorf("detail %#v", rec.Handlers[0].Detail)
		}
	})
}

// Every check run is announced, each primary attempt too, so that metrics
// see a flapping target even when a later attempt saves the round.
func TestObserverSeesEveryCheckRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		p := &script{fn: func(context.Context, int) error {
			calls++
			if calls == 2 { // round 1, attempt 1
				return &fstaid.CheckError{ExitStatus: 7}
			}
			return nil
		}}
		var got []string
		ctx, cancel := context.WithCancel(t.Context())
		m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithMaxAttempts(3), fstaid.WithLock(&memLock{}), fstaid.WithHandler("h", &handlerLog{}, time.Second),
			fstaid.WithObserver(func(n fstaid.Notice) {
				switch n.Kind {
				case fstaid.NoticeCheck:
					got = append(got, fmt.Sprintf("%s:%t:%d", n.Result.Name, n.Result.Passed, n.Result.ExitStatus))
				case fstaid.NoticeRound:
					got = append(got, "round:"+string(n.Round.Verdict))
					if n.Round.Verdict == fstaid.VerdictHealthy {
						cancel()
					}
				}
			}))
		m.Run(ctx)
		want := "primary:true:0 round:startup-passed primary:false:7 primary:true:0 round:healthy"
		if s := strings.Join(got, " "); s != want {
			t.Errorf("notices = %s\nwant      %s", s, want)
		}
	})
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := fstaid.New()
	for _, want := range []string{"no primary check", "no handler", "no failover lock"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("New() = %v; lacks %q", err, want)
		}
	}
	_, err = fstaid.New(
		fstaid.WithPrimary(&script{fn: pass}, 0),
		fstaid.WithSecondary(&script{fn: pass}, -time.Second),
		fstaid.WithSelf(nil, time.Second),
		fstaid.WithHandler("h", &handlerLog{}, 0),
		fstaid.WithHandler("h", nil, time.Second),
		fstaid.WithInterval(0),
		fstaid.WithMaxAttempts(0),
		fstaid.WithAttemptInterval(-1),
		fstaid.WithLock(fstaid.NewFileLock("")),
		fstaid.WithLockTimeout(0),
		fstaid.WithStartupCheck(42),
	)
	if !errors.Is(err, fstaid.ErrInvalidOption) {
		t.Fatalf("New = %v, want ErrInvalidOption", err)
	}
	for _, want := range []string{
		"primary check timeout must be positive", "secondary check timeout must be positive", "self check is nil",
		`handler 1 "h": timeout must be positive`, `handler 2 "h": duplicate name`, `handler 2 "h" is nil`,
		"interval must be positive", "max attempts must be at least 1", "attempt interval must not be negative",
		"file lock: empty path", "lock timeout must be positive", "unknown start-up check policy",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := fstaid.New(fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second),
		fstaid.WithLock(&memLock{}), fstaid.WithAttemptInterval(0)); err != nil {
		t.Errorf("attempt interval 0 must be valid: %v", err)
	}
}
