package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// recorder is a Notifier that records what it was given and when, and
// can block each delivery until its context ends.
type recorder struct {
	mu     sync.Mutex
	got    []fstaid.Transition
	starts []time.Time
	block  bool
}

func (r *recorder) Notify(ctx context.Context, t *fstaid.Transition) error {
	r.mu.Lock()
	r.got = append(r.got, *t)
	r.starts = append(r.starts, time.Now())
	block := r.block
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (r *recorder) transitions() []fstaid.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// summary is "kind from>to" for each transition.
func (r *recorder) summary() []string {
	var out []string
	for _, t := range r.transitions() {
		out = append(out, fmt.Sprintf("%s %s>%s", t.Kind, t.From, t.To))
	}
	return out
}

func newQueue(t *testing.T, n fstaid.Notifier, timeout time.Duration) *fstaid.Notifications {
	t.Helper()
	q, err := fstaid.NewNotifications(n, timeout, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Each scenario runs a Monitor under synctest until Run returns (or a
// stop), closes the queue, and compares the transitions delivered: one
// per change, never one per round.
func TestNotifyTransitions(t *testing.T) {
	type scenario struct {
		name string
		opts func(lock *memLock) []fstaid.Option
		// stopAfter cancels Run after this long (0: Run returns by
		// itself).
		stopAfter time.Duration
		// fail calls Fail after this long (0: never).
		fail time.Duration
		want []string
	}
	handler := fstaid.WithHandler("h", &handlerLog{}, time.Second)
	base := func(lock *memLock, primary func(context.Context, int) error) []fstaid.Option {
		return []fstaid.Option{fstaid.WithPrimary(&script{fn: primary}, time.Second), fstaid.WithInterval(time.Second),
			fstaid.WithMaxAttempts(1), handler, fstaid.WithLock(lock)}
	}
	for _, sc := range []scenario{{
		name: "armed, then the target dies",
		opts: func(l *memLock) []fstaid.Option { return base(l, failFrom(4)) },
		want: []string{"armed starting>armed", "failing-over armed>failing-over", "failed-over failing-over>failed-over"},
	}, {
		name:      "armed, then told to stop",
		opts:      func(l *memLock) []fstaid.Option { return base(l, pass) },
		stopAfter: 10 * time.Second,
		want:      []string{"armed starting>armed", "stopped armed>stopped"},
	}, {
		name: "unarmed for five rounds, then armed, then failed over",
		opts: func(l *memLock) []fstaid.Option {
			return append(base(l, func(_ context.Context, n int) error {
				if n <= 5 || n >= 9 {
					return errors.New("down")
				}
				return nil
			}), fstaid.WithStartupCheck(fstaid.StartupCheckWait))
		},
		want: []string{"unarmed starting>unarmed", "armed unarmed>armed", "failing-over armed>failing-over", "failed-over failing-over>failed-over"},
	}, {
		name: "the start-up check fails and Run stops",
		opts: func(l *memLock) []fstaid.Option { return base(l, fail) },
		want: []string{"stopped starting>stopped"},
	}, {
		name: "a self check that fails three rounds, skipped, then passes: one episode",
		opts: func(l *memLock) []fstaid.Option {
			self := &script{fn: func(_ context.Context, n int) error {
				if n >= 4 && n <= 6 { // calls 4-6: rounds 3-5
					return errors.New("isolated")
				}
				return nil
			}}
			return append(base(l, pass), fstaid.WithSelf(self, time.Second), fstaid.WithContinueIfSelfCheckFailed(true))
		},
		stopAfter: 10 * time.Second,
		want:      []string{"armed starting>armed", "self-check-failed armed>armed", "armed armed>armed", "stopped armed>stopped"},
	}, {
		name: "a self check that fails stops the monitor: one transition to stopped",
		opts: func(l *memLock) []fstaid.Option {
			return append(base(l, pass), fstaid.WithSelf(&script{fn: failFrom(3)}, time.Second))
		},
		want: []string{"armed starting>armed", "self-check-failed armed>stopped"},
	}, {
		name: "the lock cannot be taken for several rounds: one lock-unavailable until the target is healthy",
		opts: func(l *memLock) []fstaid.Option {
			l.failWith = errors.New("etcd: no quorum")
			return base(l, func(_ context.Context, n int) error {
				if n >= 3 && n <= 6 {
					return errors.New("down")
				}
				return nil
			})
		},
		stopAfter: 10 * time.Second,
		want:      []string{"armed starting>armed", "lock-unavailable armed>armed", "armed armed>armed", "stopped armed>stopped"},
	}, {
		name: "a record exists at start-up",
		opts: func(l *memLock) []fstaid.Option {
			l.rec = &fstaid.Record{State: fstaid.RecordDone, Time: time.Now()}
			return base(l, pass)
		},
		want: []string{"locked starting>locked"},
	}, {
		name: "a manual failover while unarmed",
		opts: func(l *memLock) []fstaid.Option {
			return append(base(l, fail), fstaid.WithStartupCheck(fstaid.StartupCheckWait))
		},
		fail: 3500 * time.Millisecond,
		want: []string{"unarmed starting>unarmed", "failing-over unarmed>failing-over", "failed-over failing-over>failed-over"},
	}} {
		t.Run(sc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				q := newQueue(t, rec, time.Second)
				m := newMonitor(t, append(sc.opts(&memLock{}), fstaid.WithNotifications(q), fstaid.WithTarget("db1"))...)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if sc.stopAfter > 0 {
					time.AfterFunc(sc.stopAfter, cancel)
				}
				if sc.fail > 0 {
					time.AfterFunc(sc.fail, func() { m.Fail(context.Background(), fstaid.WithRequestedBy("ops")) })
				}
				err := m.Run(ctx)
				synctest.Wait() // a Fail racing Run's end
				if err := q.Close(t.Context()); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if got := rec.summary(); !slices.Equal(got, sc.want) {
					t.Errorf("transitions (Run: %v):\n got %q\nwant %q", err, got, sc.want)
				}
				for _, tr := range rec.transitions() {
					if tr.Target != "db1" || tr.Time.IsZero() || tr.Reason == "" {
						t.Errorf("transition %s: target %q, time %v, reason %q: want db1, a time and a reason", tr.Kind, tr.Target, tr.Time, tr.Reason)
					}
					if tr.Kind == fstaid.TransitionFailingOver && sc.fail > 0 && tr.Reason != "manual, requested by ops" {
						t.Errorf("failing-over reason %q, want who asked", tr.Reason)
					}
				}
			})
		})
	}
}

// Deliveries are serialised, in order, each bounded by the timeout: a
// notifier that hangs is cut at exactly the timeout, and the next one
// begins then.
func TestNotifySerialisedWithTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{block: true}
		q := newQueue(t, rec, 3*time.Second)
		t0 := time.Now()
		for _, k := range []fstaid.TransitionKind{"a", "b", "c"} {
			q.Submit(fstaid.Transition{Kind: k})
		}
		if err := q.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		var offsets []time.Duration
		for i, tr := range rec.transitions() {
			kinds = append(kinds, string(tr.Kind))
			offsets = append(offsets, rec.starts[i].Sub(t0))
		}
		if !slices.Equal(kinds, []string{"a", "b", "c"}) || !equalDurations(offsets, secs(0, 3, 6)) {
			t.Errorf("deliveries %v at %v, want a, b, c at 0s, 3s, 6s", kinds, offsets)
		}
		if st := q.Stats(); st.Failed != 3 || st.Delivered != 0 {
			t.Errorf("stats %+v, want 3 failed (timed out)", st)
		}
	})
}

// A full queue drops its oldest transition, counts it, and tells the
// next delivered one; Submit never waits.
func TestNotifyQueueFullDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{block: true}
		q := newQueue(t, rec, time.Minute)
		t0 := time.Now()
		extra := 5
		q.Submit(fstaid.Transition{Kind: "0"})
		synctest.Wait() // 0 is being delivered
		for i := 1; i < fstaid.NotifyQueueLen+1+extra; i++ {
			q.Submit(fstaid.Transition{Kind: fstaid.TransitionKind(strconv.Itoa(i))})
		}
		if time.Since(t0) != 0 {
			t.Fatalf("Submit waited %v", time.Since(t0))
		}
		if err := q.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := rec.transitions()
		if len(got) != fstaid.NotifyQueueLen+1 {
			t.Fatalf("%d delivered, want %d", len(got), fstaid.NotifyQueueLen+1)
		}
		// 0 was being delivered; 1-5 were dropped; 6 carries the count.
		if got[0].Kind != "0" || got[1].Kind != fstaid.TransitionKind(strconv.Itoa(1+extra)) || got[1].Dropped != uint64(extra) || got[2].Dropped != 0 {
			t.Errorf("delivered %s (dropped %d), %s (dropped %d), %s (dropped %d): want 0, %d (dropped %d), then none dropped",
				got[0].Kind, got[0].Dropped, got[1].Kind, got[1].Dropped, got[2].Kind, got[2].Dropped, 1+extra, extra)
		}
		if st := q.Stats(); st.Dropped != uint64(extra) {
			t.Errorf("stats %+v, want %d dropped", st, extra)
		}
	})
}

// A notifier that hangs for an hour neither shifts the rounds' schedule
// nor delays the failover, and Close within its bound cancels it.
func TestNotifyHangingDoesNotDelayLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{block: true}
		q := newQueue(t, rec, time.Hour)
		primary := &script{fn: failFrom(6)}
		h := &handlerLog{}
		m := newMonitor(t, fstaid.WithPrimary(primary, time.Second), fstaid.WithInterval(time.Second), fstaid.WithMaxAttempts(1),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}), fstaid.WithNotifications(q))
		t0 := time.Now()
		err := m.Run(t.Context())
		if !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("Run: %v", err)
		}
		if got := primary.startOffsets(t0); !equalDurations(got, secs(0, 1, 2, 3, 4, 5)) {
			t.Errorf("rounds started at %v, want every second", got)
		}
		if h.count() != 1 || h.times[0].Sub(t0) != 5*time.Second {
			t.Errorf("handler ran %d times, at %v: want once at 5s", h.count(), h.times)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		cerr := q.Close(ctx)
		if !errors.Is(cerr, context.DeadlineExceeded) {
			t.Errorf("Close: %v, want the deadline's error (armed still hangs)", cerr)
		}
		if st := q.Stats(); st.Dropped != 2 || st.Failed != 1 {
			t.Errorf("stats %+v, want failing-over and failed-over dropped, armed failed", st)
		}
	})
}

// The command gets keepalived's arguments and the FSTAID_* environment;
// its output is logged. (It inherits the test's environment too: CI's
// FSTAID_E2E_* settings are not the notifier's.)
func TestNotifyScriptArgsAndEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "notify.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n{ echo \"$*\"; env | grep ^FSTAID_ | grep -v ^FSTAID_E2E_ | sort; } >> "+out+"\necho said $4\n"), 0o755)
	var logs syncBuffer
	q, err := fstaid.NewNotifications(fstaid.NotifyScript(script+" --page"), 5*time.Second, newBufferLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	q.Submit(fstaid.Transition{Kind: fstaid.TransitionFailedOver, From: "failing-over", To: "failed-over",
		Reason: "a handler failed:\nexit 3", Target: "db1", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Record: &fstaid.Record{State: fstaid.RecordHandlerFailed, Event: &fstaid.Event{Reason: fstaid.ReasonManual, RequestedBy: "ops@127.0.0.1"}}})
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	want := `--page INSTANCE db1 failed-over
FSTAID_OLD_STATE=failing-over
FSTAID_REASON=a handler failed: exit 3
FSTAID_RECORD_STATE=handler-failed
FSTAID_REQUESTED_BY=ops@127.0.0.1
FSTAID_STATE=failed-over
FSTAID_TARGET=db1
FSTAID_TIME=2025-01-02T03:04:05Z
FSTAID_TRANSITION=failed-over
`
	if string(b) != want {
		t.Errorf("the command saw:\n%s\nwant:\n%s", b, want)
	}
	if !strings.Contains(logs.String(), "said failed-over") {
		t.Errorf("the command's output is not logged:\n%s", logs.String())
	}
	if st := q.Stats(); st.Delivered != 1 {
		t.Errorf("stats %+v, want 1 delivered", st)
	}
}

// A command that outlives its timeout is killed with its whole process
// group, and the next notification runs.
func TestNotifyScriptTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	q := newQueue(t, fstaid.NotifyScript(`sh -c 'sleep 60 & echo $! > `+pidFile+`; wait'`), 300*time.Millisecond)
	t0 := time.Now()
	q.Submit(fstaid.Transition{Kind: fstaid.TransitionArmed})
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Close took %v: the timeout did not end the command", d)
	}
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("no pid written: %q", b)
	}
	waitGone(t, pid)
	if st := q.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
}

// A notify command that sleeps for a minute does not delay the rounds or
// the failover: real processes, real time.
func TestSlowNotifyCommandDoesNotDelayFailover(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pids")
	q := newQueue(t, fstaid.NotifyScript(`sh -c 'echo $$ >> `+pidFile+`; exec sleep 60'`), time.Minute)
	primary := &script{fn: failFrom(6)}
	h := &handlerLog{}
	m := newMonitor(t, fstaid.WithPrimary(primary, time.Second), fstaid.WithInterval(50*time.Millisecond), fstaid.WithMaxAttempts(1),
		fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}), fstaid.WithNotifications(q))
	t0 := time.Now()
	err := m.Run(t.Context())
	took := time.Since(t0)
	if !errors.Is(err, fstaid.ErrFailedOver) || h.count() != 1 {
		t.Fatalf("Run: %v, handler ran %d times; want a failover", err, h.count())
	}
	// Six rounds 50 ms apart: 250 ms and scheduling; a notification
	// waited for would take a minute.
	if took > 10*time.Second {
		t.Errorf("Run took %v with a notify command sleeping 60 s", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want the deadline's error", err)
	}
	b, _ := os.ReadFile(pidFile)
	pids := strings.Fields(string(b))
	if len(pids) != 1 {
		t.Fatalf("notify command ran %d times (%q), want once: the rest queued", len(pids), pids)
	}
	pid, _ := strconv.Atoi(pids[0])
	waitGone(t, pid)
	t.Logf("Run took %v; stats %+v", took, q.Stats())
}

func TestNotificationsRefuseBadSettings(t *testing.T) {
	for _, c := range []struct {
		n       fstaid.Notifier
		timeout time.Duration
		want    string
	}{
		{fstaid.NotifyScript("/bin/true"), 0, "timeout must be positive"},
		{fstaid.NotifyScript("notify | mail"), time.Second, "shell operator"},
		{fstaid.NotifyScript(""), time.Second, "empty"},
	} {
		_, err := fstaid.NewNotifications(c.n, c.timeout, nil)
		if !errors.Is(err, fstaid.ErrInvalidOption) || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("NewNotifications(%v, %v) = %v, want ErrInvalidOption saying %q", c.n, c.timeout, err, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger written from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newBufferLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
