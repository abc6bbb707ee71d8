package fstaid_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// readyScript is a ReadinessCheck whose answer per run comes from a
// function of the run number (1-based); it records when each run
// started, its context's deadline, and why its context ended, if it did.
type readyScript struct {
	mu        sync.Mutex
	starts    []time.Time
	deadlines []time.Time
	causes    []error
	fn        func(ctx context.Context, run int) []fstaid.Problem
}

func (r *readyScript) Ready(ctx context.Context) []fstaid.Problem {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	dl, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, dl)
	n := len(r.starts)
	r.mu.Unlock()
	ps := r.fn(ctx, n)
	r.mu.Lock()
	r.causes = append(r.causes, context.Cause(ctx))
	r.mu.Unlock()
	return ps
}

func (r *readyScript) runs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func offsets(t0 time.Time, ts []time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(t0))
	}
	return out
}

func readyAlways(context.Context, int) []fstaid.Problem { return nil }

func TestReadinessNeverShiftsRounds(t *testing.T) {
	// A readiness run that takes longer than the gap between rounds is
	// cut at the next round's start; one whose check ignores its context
	// altogether still delays no round. Either way the rounds keep their
	// schedule to the nanosecond.
	for _, tt := range []struct {
		name   string
		ready  func(release <-chan struct{}) func(context.Context, int) []fstaid.Problem
		starts []time.Duration // readiness runs
	}{
		{"honours its context", func(<-chan struct{}) func(context.Context, int) []fstaid.Problem {
			return func(ctx context.Context, _ int) []fstaid.Problem { <-ctx.Done(); return nil }
		}, secs(0, 1, 2, 3, 4)}, // cut every time: it goes on in every gap
		{"ignores its context", func(release <-chan struct{}) func(context.Context, int) []fstaid.Problem {
			return func(ctx context.Context, _ int) []fstaid.Problem { <-release; return nil }
		}, secs(0)}, // no second run while the first has not returned
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				release := make(chan struct{})
				p := &script{fn: sleepThen(300*time.Millisecond, nil)}
				rs := &readyScript{fn: tt.ready(release)}
				m := newMonitor(t, fstaid.WithPrimary(p, 2*time.Second), fstaid.WithInterval(time.Second),
					fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
					fstaid.WithReadiness(2*time.Second, rs))
				ctx, cancel := context.WithCancel(t.Context())
				done := runAsync(ctx, m)
				time.Sleep(5*time.Second + 100*time.Millisecond)
				close(release)
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run = %v", err)
				}
				if got, want := p.startOffsets(t0), secs(0, 1, 2, 3, 4, 5); !equalDurations(got, want) {
					t.Errorf("round starts = %v, want %v: readiness shifted the schedule", got, want)
				}
				// Each run starts after a round (0.3 s) and must end at
				// the next round's start.
				wantStarts := make([]time.Duration, len(tt.starts))
				wantDeadlines := make([]time.Duration, len(tt.starts))
				for i, s := range tt.starts {
					wantStarts[i] = s + 300*time.Millisecond
					wantDeadlines[i] = s + time.Second
				}
				if got := offsets(t0, rs.starts); !equalDurations(got, wantStarts) {
					t.Errorf("readiness starts = %v, want %v", got, wantStarts)
				}
				if got := offsets(t0, rs.deadlines); !equalDurations(got, wantDeadlines) {
					t.Errorf("readiness deadlines = %v, want %v (the next round's start)", got, wantDeadlines)
				}
			})
		})
	}
}

func TestReadinessGoesOnInTheNextGap(t *testing.T) {
	// A part cut short by the next round runs again in the next gap; a
	// part that finished is not run again; the run is published once
	// every part is done.
	synctest.Test(t, func(t *testing.T) {
		fast := &readyScript{fn: readyAlways}
		slow := &readyScript{fn: func(ctx context.Context, n int) []fstaid.Problem {
			if n == 1 {
				<-ctx.Done() // cut by the round at 1 s
			}
			return nil
		}}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(time.Minute, fast, slow))
		t0 := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(1500 * time.Millisecond)
		cancel()
		<-done
		rd := m.Status().Readiness
		if rd == nil || !rd.Ready || !rd.Checked.Equal(t0) || rd.Duration != time.Second {
			t.Fatalf("readiness = %+v, want ready, checked at the start, done in the second gap (1 s)", rd)
		}
		if fast.runs() != 1 || slow.runs() != 2 {
			t.Errorf("fast ran %d times, slow %d; want 1 and 2", fast.runs(), slow.runs())
		}
	})
}

func TestReadinessNotDoneWithinAnIntervalIsUnverified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast := &readyScript{fn: readyAlways}
		slow := &readyScript{fn: func(ctx context.Context, _ int) []fstaid.Problem {
			<-ctx.Done()
			return []fstaid.Problem{{Kind: fstaid.ProblemResource, Resource: "x", Message: "context deadline exceeded"}}
		}}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(10*time.Second, fast, stringer{slow, "slow check"}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(10500 * time.Millisecond)
		cancel()
		<-done
		rd := m.Status().Readiness
		if rd == nil || rd.Ready || len(rd.Problems) != 1 {
			t.Fatalf("readiness = %+v, want one problem", rd)
		}
		if p := rd.Problems[0]; p.Kind != fstaid.ProblemUnverified || p.Resource != "slow check" || !strings.Contains(p.Message, "gaps between rounds") {
			t.Errorf("problem = %+v, want the slow check unverified (cut by every round)", p)
		}
		// The first run: 10 gaps (0 s to 9 s), published at 10 s; the
		// next run began in the gap at 10 s.
		if rd.Duration != 10*time.Second || slow.runs() != 11 || fast.runs() != 2 {
			t.Errorf("run took %v, slow ran %d times, fast %d; want 10 s (one readiness interval), 10+1 gaps, 1+1", rd.Duration, slow.runs(), fast.runs())
		}
	})
}

type stringer struct {
	fstaid.ReadinessCheck
	name string
}

func (s stringer) String() string { return s.name }

func TestReadinessNoticesAndLogsOnChangeOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := fstaid.Problem{Kind: fstaid.ProblemPermission, Resource: "eipalloc-1", Action: "AssociateAddress"}
		gone := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "stopped"}
		// Per run: ready, ready, denied, denied (another request ID in
		// the message), denied and gone, ready.
		plan := [][]fstaid.Problem{nil, nil, {denied}, {denied}, {denied, gone}, nil}
		rs := &readyScript{fn: func(_ context.Context, n int) []fstaid.Problem {
			if n > len(plan) {
				return nil
			}
			ps := append([]fstaid.Problem(nil), plan[n-1]...)
			for i := range ps {
				ps[i].Message += " request " + strings.Repeat("x", n)
			}
			return ps
		}}
		var notices []*fstaid.Readiness
		var logs lockedBuffer
		m, err := fstaid.New(fstaid.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), fstaid.WithPrimary(&script{fn: pass}, time.Second),
			fstaid.WithInterval(time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(10*time.Second, rs),
			fstaid.WithObserver(func(n fstaid.Notice) {
				if n.Kind == fstaid.NoticeReadiness {
					notices = append(notices, n.Readiness)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(55 * time.Second)
		cancel()
		<-done
		if rs.runs() != 6 {
			t.Fatalf("%d readiness runs in 55 s every 10 s, want 6", rs.runs())
		}
		var got []string
		for _, r := range notices {
			got = append(got, strings.Join(problemKeys(r), ","))
		}
		want := []string{"ready", "permission eipalloc-1 AssociateAddress", "permission eipalloc-1 AssociateAddress,resource i-standby", "ready"}
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Errorf("notices = %q, want %q", got, want)
		}
		if n := strings.Count(logs.String(), "event=readiness"); n != 4 {
			t.Errorf("%d readiness log lines, want 4 (one per change):\n%s", n, logs.String())
		}
		if n := strings.Count(logs.String(), "FAILOVER PATH NOT READY"); n != 2 {
			t.Errorf("%d loud lines, want 2", n)
		}
	})
}

func problemKeys(r *fstaid.Readiness) []string {
	if r.Ready {
		return []string{"ready"}
	}
	var out []string
	for _, p := range r.Problems {
		out = append(out, strings.TrimSpace(string(p.Kind)+" "+p.Resource+" "+p.Action))
	}
	return out
}

func TestNotReadyStillFailsOverAndRecordsReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gone := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "standby instance i-standby is stopped"}
		rs := &readyScript{fn: func(context.Context, int) []fstaid.Problem { return []fstaid.Problem{gone} }}
		h := &handlerLog{}
		lock := &memLock{}
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(4)}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithMaxAttempts(1), fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(lock),
			fstaid.WithReadiness(time.Minute, rs))
		err := m.Run(t.Context())
		if !errors.Is(err, fstaid.ErrFailedOver) || h.count() != 1 {
			t.Fatalf("Run = %v, handler ran %d times: a monitor that is not ready must still fail over", err, h.count())
		}
		rec := lock.record()
		if rec.Readiness == nil || rec.Readiness.Ready || len(rec.Readiness.Problems) != 1 || rec.Readiness.Problems[0] != gone {
			t.Errorf("record readiness = %+v, want the stopped standby", rec.Readiness)
		}
	})
}

func TestReadinessNeverDuringAFailover(t *testing.T) {
	// A failover (Fail) cancels the run in progress, and no run starts
	// while it runs, also when the round it interrupted ends meanwhile.
	for _, tt := range []struct {
		name       string
		round      time.Duration // how long a round takes
		fail       time.Duration // when Fail is called
		runs       []time.Duration
		interrupts bool // Fail interrupts the second run
	}{
		// Run 1 at 0.1 s, run 2 at 1.1 s, interrupted at 1.5 s.
		{"a run in progress", 100 * time.Millisecond, 1500 * time.Millisecond, secs(0.1, 1.1), true},
		// Run 1 at 0.5 s; Fail at 1.2 s, in the round of 1 s; the gap
		// after it (1.5 s) starts no run.
		{"a gap during the failover", 500 * time.Millisecond, 1200 * time.Millisecond, secs(0.5), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := &readyScript{fn: func(ctx context.Context, n int) []fstaid.Problem {
					if n == 2 {
						<-ctx.Done()
					}
					return nil
				}}
				h := &handlerLog{delay: 5 * time.Second}
				var readinessNotices int
				m := newMonitor(t, fstaid.WithPrimary(&script{fn: sleepThen(tt.round, nil)}, time.Second),
					fstaid.WithInterval(time.Second), fstaid.WithHandler("h", h, 10*time.Second), fstaid.WithLock(&memLock{}),
					fstaid.WithReadiness(time.Second, rs),
					fstaid.WithObserver(func(n fstaid.Notice) {
						if n.Kind == fstaid.NoticeReadiness {
							readinessNotices++
						}
					}))
				t0 := time.Now()
				done := runAsync(t.Context(), m)
				time.Sleep(tt.fail)
				if _, err := m.Fail(t.Context()); err != nil {
					t.Fatalf("Fail = %v", err)
				}
				if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
					t.Fatalf("Run = %v", err)
				}
				if got := offsets(t0, rs.starts); !equalDurations(got, tt.runs) {
					t.Errorf("readiness runs at %v, want %v: none while the failover ran (from %v on)", got, tt.runs, tt.fail)
				}
				if tt.interrupts && (len(rs.causes) != 2 || rs.causes[1] == nil || !strings.Contains(rs.causes[1].Error(), "interrupted")) {
					t.Errorf("run 2 ended with %v, want interrupted by the failover", rs.causes)
				}
				// An interrupted run publishes nothing: still the first result.
				if rd := m.Status().Readiness; readinessNotices != 1 || !rd.Ready || rd.Checked.Sub(t0) != tt.runs[0] {
					t.Errorf("readiness %+v after %d notices, want run 1's only", rd, readinessNotices)
				}
			})
		})
	}
}

func TestReadinessFindsTheHandlerRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "failover.sh")
		if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		m := newMonitor(t, fstaid.WithPrimary(&script2{}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("handler", fstaid.Script(path+" --now"), time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(10*time.Second))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second)
		if rd := m.Status().Readiness; rd == nil || !rd.Ready {
			t.Fatalf("readiness = %+v, want ready", rd)
		}
		os.Remove(path)
		time.Sleep(10 * time.Second)
		rd := m.Status().Readiness
		if rd.Ready || len(rd.Problems) != 1 || rd.Problems[0].Kind != fstaid.ProblemHandler || rd.Problems[0].Resource != path {
			t.Fatalf("readiness = %+v, want the handler %s missing, within one readiness interval", rd, path)
		}
		os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o644)
		time.Sleep(10 * time.Second)
		if rd := m.Status().Readiness; rd.Ready || !strings.Contains(rd.Problems[0].Message, "permission denied") {
			t.Fatalf("readiness = %+v, want the handler not executable", rd)
		}
		os.Chmod(path, 0o755)
		time.Sleep(10 * time.Second)
		if rd := m.Status().Readiness; !rd.Ready {
			t.Fatalf("readiness = %+v, want ready again", rd)
		}
	})
}

// script2 passes every time.
type script2 struct{}

func (script2) Check(context.Context) error { return nil }

func TestReadinessOptionErrors(t *testing.T) {
	_, err := fstaid.New(fstaid.WithPrimary(&script2{}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second),
		fstaid.WithLock(&memLock{}), fstaid.WithReadiness(-time.Second, nil))
	if !errors.Is(err, fstaid.ErrInvalidOption) || !strings.Contains(err.Error(), "readiness interval must not be negative") ||
		!strings.Contains(err.Error(), "readiness check 1 is nil") {
		t.Errorf("New = %v, want both readiness problems", err)
	}
}

func TestReadinessOffByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMonitor(t, fstaid.WithPrimary(&script2{}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", fstaid.Script("/nonexistent/handler"), time.Second), fstaid.WithLock(&memLock{}))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(3 * time.Second)
		cancel()
		<-done
		if rd := m.Status().Readiness; rd != nil {
			t.Errorf("readiness = %+v without WithReadiness, want nil", rd)
		}
	})
}

// TestReadinessFindsTheLockDirectoryReadOnly remounts the lock directory
// read-only under an armed Monitor, as an operator's mistake or a file
// system error (errors=remount-ro) would: the next run is not ready,
// naming the lock, and ready again once it is writable. The mounts are
// made in a private mount namespace (rerunInMountNS): a bind mount of a
// t.TempDir() onto itself, remounted read-only and back.
func TestReadinessFindsTheLockDirectoryReadOnly(t *testing.T) {
	t.Run("bind-ro", func(t *testing.T) {
		if os.Getenv(mountNSInner) != "1" {
			rerunInMountNS(t)
			return
		}
		dir := t.TempDir()
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			t.Fatalf("mount --bind %s: %v", dir, err)
		}
		t.Cleanup(func() { unmount(t, dir) })
		remount := func(flags uintptr) {
			t.Helper()
			if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|flags, ""); err != nil {
				t.Fatalf("remount %s (flags %#x): %v", dir, flags, err)
			}
		}
		lockPath := filepath.Join(dir, "fstaid.8080.lock")
		synctest.Test(t, func(t *testing.T) {
			m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
				fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(fstaid.NewFileLock(lockPath)),
				fstaid.WithReadiness(10*time.Second))
			ctx, cancel := context.WithCancel(t.Context())
			done := runAsync(ctx, m)
			defer func() { cancel(); <-done }()
			time.Sleep(time.Second)
			if rd := m.Status().Readiness; rd == nil || !rd.Ready {
				t.Fatalf("readiness = %+v, want ready", rd)
			}
			remount(syscall.MS_RDONLY)
			time.Sleep(10 * time.Second)
			rd := m.Status().Readiness
			if rd.Ready || len(rd.Problems) != 1 || rd.Problems[0].Kind != fstaid.ProblemLock || rd.Problems[0].Resource != lockPath ||
				!strings.Contains(rd.Problems[0].Message, "read-only file system") {
				t.Fatalf("readiness = %+v, want the lock %s read-only, within one readiness interval", rd, lockPath)
			}
			remount(0)
			time.Sleep(10 * time.Second)
			if rd := m.Status().Readiness; !rd.Ready {
				t.Fatalf("readiness = %+v, want ready again", rd)
			}
		})
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("readiness runs left %v in the lock directory", names)
		}
	})
}

func TestReadinessTransitionsNotify(t *testing.T) {
	// ready, not ready, not ready for another reason too, ready: the
	// notify command hears each change of Ready (a first result that is
	// ready is no news), in order with the Monitor's own transitions,
	// whose states readiness does not touch.
	synctest.Test(t, func(t *testing.T) {
		denied := fstaid.Problem{Kind: fstaid.ProblemPermission, Resource: "eipalloc-1", Action: "AssociateAddress", Message: "not authorized"}
		gone := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "stopped"}
		plan := [][]fstaid.Problem{nil, {denied}, {denied, gone}, nil}
		rs := &readyScript{fn: func(_ context.Context, n int) []fstaid.Problem { return plan[min(n, len(plan))-1] }}
		rec := &recorder{}
		q := newQueue(t, rec, time.Second)
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(10*time.Second, rs), fstaid.WithNotifications(q))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(35 * time.Second)
		cancel()
		<-done
		if err := q.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"armed starting>armed", "not-ready ready>not-ready", "ready not-ready>ready", "stopped armed>stopped"}
		if got := rec.summary(); !slices.Equal(got, want) {
			t.Errorf("transitions = %q, want %q", got, want)
		}
		for _, tr := range rec.transitions() {
			if tr.Kind == fstaid.TransitionNotReady && (tr.Target != m.Status().Target || !strings.Contains(tr.Reason, "AssociateAddress") || !strings.Contains(tr.Reason, "eipalloc-1")) {
				t.Errorf("not-ready transition %+v: want the target, the action and the resource", tr)
			}
		}
	})
}

// Reconfigure may turn readiness on, with other checks, or off: off,
// Status has no readiness (not the last result, which nothing renews).
func TestReconfigureReadinessOnAndOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lock := &memLock{}
		base := []fstaid.Option{fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(lock)}
		gone := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "stopped"}
		m := newMonitor(t, base...)
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		defer func() { cancel(); <-done }()
		time.Sleep(1500 * time.Millisecond)
		if rd := m.Status().Readiness; rd != nil {
			t.Fatalf("readiness %+v before it is on", rd)
		}
		rs := &readyScript{fn: func(context.Context, int) []fstaid.Problem { return []fstaid.Problem{gone} }}
		if err := m.Reconfigure(t.Context(), append(base, fstaid.WithReadiness(10*time.Second, rs))...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if rd := m.Status().Readiness; rd == nil || rd.Ready || len(rd.Problems) != 1 || rd.Problems[0] != gone {
			t.Fatalf("readiness %+v after turning it on, want the stopped standby", rd)
		}
		if err := m.Reconfigure(t.Context(), base...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Second)
		if rd := m.Status().Readiness; rd != nil || rs.runs() != 1 {
			t.Errorf("readiness %+v after %d runs, once turned off; want none, and no more runs", rd, rs.runs())
		}
	})
}

// The first result is news only when it is not ready.
func TestReadinessFirstNotReadyNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gone := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "stopped"}
		plan := [][]fstaid.Problem{{gone}, nil}
		rs := &readyScript{fn: func(_ context.Context, n int) []fstaid.Problem { return plan[min(n, len(plan))-1] }}
		rec := &recorder{}
		q := newQueue(t, rec, time.Second)
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}),
			fstaid.WithReadiness(10*time.Second, rs), fstaid.WithNotifications(q))
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, m)
		time.Sleep(15 * time.Second)
		cancel()
		<-done
		if err := q.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"armed starting>armed", "not-ready unknown>not-ready", "ready not-ready>ready", "stopped armed>stopped"}
		if got := rec.summary(); !slices.Equal(got, want) {
			t.Errorf("transitions = %q, want %q", got, want)
		}
	})
}
