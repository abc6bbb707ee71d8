package systemd

import (
	"context"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	const unset = "<unset>"
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		wantOK    bool
	}{
		{unset, unset, 0, false},
		{"30000000", unset, 15 * time.Second, true},
		{"30000000", self, 15 * time.Second, true},
		{"30000000", "1", 0, false}, // inherited from a parent: not ours
		{"4000000", self, 2 * time.Second, true},
		{"1", self, 500 * time.Nanosecond, true},
		{"", self, 0, false},
		{"0", unset, 0, false},
		{"-5", unset, 0, false},
		{"30s", unset, 0, false},
		{"30000000", "pid", 0, false},
		{unset, self, 0, false},
	} {
		for k, v := range map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid} {
			t.Setenv(k, v)
			if v == unset {
				os.Unsetenv(k)
			}
		}
		got, ok := WatchdogInterval()
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("WATCHDOG_USEC=%s WATCHDOG_PID=%s (own pid %s): WatchdogInterval() = %v, %v; want %v, %v",
				tc.usec, tc.pid, self, got, ok, tc.want, tc.wantOK)
		}
	}
}

// pingLog records when pings and health checks happen, relative to t0.
type pingLog struct {
	t0     time.Time
	mu     sync.Mutex
	pings  []time.Duration
	checks []time.Duration
}

func (l *pingLog) ping() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pings = append(l.pings, time.Since(l.t0))
	return nil
}

func (l *pingLog) checked(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checks = append(l.checks, now.Sub(l.t0))
}

func (l *pingLog) snapshot() (pings, checks []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pings), slices.Clone(l.checks)
}

func multiples(d time.Duration, ks ...int) []time.Duration {
	out := make([]time.Duration, len(ks))
	for i, k := range ks {
		out[i] = time.Duration(k) * d
	}
	return out
}

func TestRunWatchdogSchedule(t *testing.T) {
	// Healthy, then unhealthy from 3 to 6 intervals, then healthy again:
	// pings at exactly 1, 2, then 6, 7, 8 intervals; health checked at
	// every interval throughout.
	synctest.Test(t, func(t *testing.T) {
		const iv = 15 * time.Second
		l := &pingLog{t0: time.Now()}
		healthy := func(now time.Time) bool {
			l.checked(now)
			e := now.Sub(l.t0)
			return e < 3*iv || e >= 6*iv
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			runWatchdog(ctx, l.ping, iv, healthy)
		}()
		time.Sleep(8*iv + iv/2)
		cancel()
		<-done
		pings, checks := l.snapshot()
		if want := multiples(iv, 1, 2, 6, 7, 8); !slices.Equal(pings, want) {
			t.Errorf("pings at %v, want %v", pings, want)
		}
		if want := multiples(iv, 1, 2, 3, 4, 5, 6, 7, 8); !slices.Equal(checks, want) {
			t.Errorf("health checked at %v, want %v", checks, want)
		}
	})
}

func TestRunWatchdogNonPositiveIntervalReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &pingLog{t0: time.Now()}
		runWatchdog(t.Context(), l.ping, 0, func(time.Time) bool { return true })
		RunWatchdog(t.Context(), nil, -time.Second, func(time.Time) bool { return true })
		if pings, _ := l.snapshot(); len(pings) != 0 {
			t.Errorf("pings %v with interval 0", pings)
		}
	})
}

// TestWatchdogFollowsMonitorDeadline drives the watchdog from a real
// Monitor the way fstaidd does. A round that takes its full time keeps
// the pings going; a check that ignores its context hangs the loop, and
// the pings stop once Status().Deadline passes; when the check returns,
// the loop moves on and the pings resume.
func TestWatchdogFollowsMonitorDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			interval = time.Second
			timeout  = 2 * time.Second
			iv       = 500 * time.Millisecond // WatchdogSec=1s
		)
		var (
			mu      sync.Mutex
			hang    bool
			release = make(chan struct{})
		)
		primary := fstaid.CheckFunc(func(ctx context.Context) error {
			mu.Lock()
			h := hang
			mu.Unlock()
			if h {
				<-release // ignores ctx: the loop is stuck
				return nil
			}
			// Slow but within its timeout.
			time.Sleep(timeout - 100*time.Millisecond)
			return nil
		})
		m, err := fstaid.New(
			fstaid.WithPrimary(primary, timeout),
			fstaid.WithMaxAttempts(1),
			fstaid.WithInterval(interval),
			// The secondary passes, so the timed-out primary does not
			// fail over and the loop carries on after the hang.
			fstaid.WithSecondary(fstaid.CheckFunc(func(context.Context) error { return nil }), timeout),
			fstaid.WithHandler("h", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), timeout),
			fstaid.WithLock(fstaid.NewFileLock(t.TempDir()+"/lock")),
			fstaid.WithLogger(nil),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		runDone := make(chan error, 1)
		go func() { runDone <- m.Run(ctx) }()
		synctest.Wait() // Run has set its first deadline

		l := &pingLog{t0: time.Now()}
		wdDone := make(chan struct{})
		go func() {
			defer close(wdDone)
			runWatchdog(ctx, l.ping, iv, func(now time.Time) bool { return now.Before(m.Status().Deadline) })
		}()

		// Slow rounds, each using nearly its whole timeout: a ping at
		// every tick.
		time.Sleep(10*time.Second + iv/4)
		pings, _ := l.snapshot()
		if want := multiples(iv, seq(1, 20)...); !slices.Equal(pings, want) {
			t.Fatalf("while healthy: pings at %v, want every %v: %v", pings, iv, want)
		}

		// Hang the next check and wait well past the deadline.
		mu.Lock()
		hang = true
		mu.Unlock()
		time.Sleep(interval + time.Second)
		deadline := m.Status().Deadline.Sub(l.t0)
		time.Sleep(deadline - time.Since(l.t0) + 5*time.Second)
		pings, _ = l.snapshot()
		last := pings[len(pings)-1]
		if last >= deadline || deadline-last > iv {
			t.Fatalf("hung loop with deadline %v: last ping at %v, want the last tick before the deadline (pings %v)", deadline, last, pings)
		}

		// Unstick it: the loop moves its deadline, the pings resume at
		// the next tick.
		resumed := time.Since(l.t0)
		close(release)
		time.Sleep(2 * time.Second)
		pings, _ = l.snapshot()
		var after []time.Duration
		for _, p := range pings {
			if p > deadline {
				after = append(after, p)
			}
		}
		next := (resumed/iv + 1) * iv
		if want := []time.Duration{next, next + iv, next + 2*iv, next + 3*iv}; !slices.Equal(after, want) {
			t.Errorf("after the hang ended at %v: pings at %v, want %v", resumed, after, want)
		}
		t.Logf("round bound %v; deadline of the hung round %v; last ping before it %v; hang ended at %v; pings resumed at %v",
			m.RoundBound(), deadline, last, resumed, after[0])

		cancel()
		<-wdDone
		if err := <-runDone; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	})
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestRunWatchdogRealSocket runs the exported RunWatchdog on real time
// against a real notify socket: WATCHDOG=1 datagrams while healthy, none
// while not, none after ctx is done.
func TestRunWatchdogRealSocket(t *testing.T) {
	c := notifySocket(t)
	const iv = 20 * time.Millisecond
	var mu sync.Mutex
	ok := true
	healthy := func(time.Time) bool { mu.Lock(); defer mu.Unlock(); return ok }
	setHealthy := func(v bool) { mu.Lock(); ok = v; mu.Unlock() }

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunWatchdog(ctx, NewNotifier(), iv, healthy)
	}()
	for range 3 {
		if got := readDatagram(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}

	setHealthy(false)
	drain(c) // a ping already sent before the switch
	if got, ok := readWithin(c, 10*iv); ok {
		t.Fatalf("got %q while unhealthy, want nothing", got)
	}
	setHealthy(true)
	if got := readDatagram(t, c); got != "WATCHDOG=1" {
		t.Fatalf("got %q after recovery, want WATCHDOG=1", got)
	}

	cancel()
	<-done
	drain(c)
	if got, ok := readWithin(c, 5*iv); ok {
		t.Errorf("got %q after ctx was done, want nothing", got)
	}
}

// readWithin reads one datagram, reporting false if none comes within d.
func readWithin(c *net.UnixConn, d time.Duration) (string, bool) {
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// drain discards what is queued, waiting one short moment for stragglers.
func drain(c *net.UnixConn) {
	for {
		if _, ok := readWithin(c, 50*time.Millisecond); !ok {
			return
		}
	}
}
