package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
)

// READY=1, STATUS= and WATCHDOG=1, under testing/synctest: the daemon's
// clock is fake and exact, so the pings (one per 100 ms) are counted
// exactly while the loop is healthy, while its rounds are slow, and once
// it hangs: they go on until the hung round's bound and stop there.
func TestNotifyReadyStatusAndWatchdog(t *testing.T) {
	startSignalLoop()
	synctest.Test(t, func(t *testing.T) {
		n := bindNotify(t)
		t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100 ms
		t.Setenv("WATCHDOG_PID", "")
		const ping = 100 * time.Millisecond
		// RoundBound: 1 s timeout + (1+3) × 0.5 s grace + 1 s margin.
		const roundBound = 4 * time.Second
		e := newEnv(t, 0, "")
		e.touch("dead") // dead at start: unarmed
		var mode atomic.Int32
		hung := make(chan time.Time, 1)
		release := make(chan struct{})
		primary := fstaid.CheckFunc(func(ctx context.Context) error {
			switch mode.Load() {
			case 0:
				return fmt.Errorf("dead")
			case 1:
				return nil
			case 2: // a slow but healthy round
				time.Sleep(600 * time.Millisecond)
				return nil
			default: // a check that ignores its context: the loop hangs
				hung <- time.Now()
				<-release
				return nil
			}
		})
		r, _ := e.startInBubble(fstaid.WithPrimary(primary, time.Second), fstaid.WithMaxAttempts(1))
		var lines []string // what arrived besides the pings
		// advance lets d pass, one ping interval at a time (the socket
		// queues only ten datagrams), and counts the pings.
		advance := func(d time.Duration) (pings int) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(ping)
				synctest.Wait()
				for _, m := range n.take(t) {
					if m == "WATCHDOG=1" {
						pings++
					} else {
						lines = append(lines, m)
					}
				}
			}
			return pings
		}

		// Unarmed at start; armed at the next start-up round, 50 ms on.
		synctest.Wait()
		mode.Store(1)
		advance(ping)
		want := []string{"READY=1", "MAINPID=", "STATUS=starting", "STATUS=unarmed: start-up check failed",
			"STATUS=starting", "STATUS=armed: watching db1"}
		if !hasPrefixes(lines, want) {
			t.Errorf("notifications %q, want lines starting %q", lines, want)
		}
		lines = nil
		if p := advance(time.Second); p != 10 {
			t.Errorf("%d pings in 1 s while healthy, want 10", p)
		}
		mode.Store(2)
		if p := advance(1500 * time.Millisecond); p != 15 {
			t.Errorf("%d pings in 1.5 s of slow rounds, want 15: a slow round is not a hung loop", p)
		}
		mode.Store(3)
		var hungAt time.Time
		for hungAt.IsZero() {
			advance(ping)
			select {
			case hungAt = <-hung:
			default:
			}
		}
		// The watchdog pings while now is before the loop's deadline:
		// the hung round's start plus the round bound.
		deadline := hungAt.Add(roundBound)
		for tick := time.Now().Add(ping); tick.Before(deadline.Add(time.Second)); tick = tick.Add(ping) {
			want := 0
			if tick.Before(deadline) {
				want = 1
			}
			if p := advance(ping); p != want {
				t.Errorf("ping due %v after the loop hung (round bound %v): %d sent, want %d", tick.Sub(hungAt), roundBound, p, want)
			}
		}
		r.stop()
		synctest.Wait()
		close(release)
		if code := r.wait(t); code != exitOK {
			t.Errorf("exit %d, want %d", code, exitOK)
		}
		if p := advance(ping); p != 0 {
			t.Errorf("%d pings after the exit", p)
		}
		if want := []string{"STATUS=stopped", "STOPPING=1"}; !hasPrefixes(lines, want) {
			t.Errorf("notifications after armed %q, want %q", lines, want)
		}
	})
}

// hasPrefixes reports whether lines[i] starts with prefixes[i] for each
// i, with as many lines as prefixes.
func hasPrefixes(lines, prefixes []string) bool {
	if len(lines) != len(prefixes) {
		return false
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, prefixes[i]) {
			return false
		}
	}
	return true
}

// Issue 13, item 1, live: a manual failover (a planned switchover whose
// handler stops the old active, so the rounds then find the target dead)
// whose handler outlasts a round's bound. The watchdog pings must go on
// until the handler returns, and STATUS= must not say armed meanwhile:
// with WatchdogSec, systemd would otherwise SIGABRT fstaidd mid-handler.
// The handler runs until the test has seen a ping past the round bound.
func TestWatchdogPingsThroughManualFailover(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100 ms
	t.Setenv("WATCHDOG_PID", "")
	e := newEnv(t, 0, users)
	release := e.gateHandler()
	var dead atomic.Bool
	primary := fstaid.CheckFunc(func(ctx context.Context) error {
		if dead.Load() {
			return context.DeadlineExceeded
		}
		return nil
	})
	// RoundBound: 0.2 s + (1+3) × 0.5 s grace + 1 s margin.
	const roundBound = 3200 * time.Millisecond
	r := e.start(fstaid.WithPrimary(primary, 200*time.Millisecond), fstaid.WithMaxAttempts(1))
	r.waitState(t, fstaid.StateArmed)
	failed := make(chan int, 1)
	go func() {
		resp, _, err := request(context.Background(), "POST", r.url+"/fail", "ops", "pw")
		if err != nil {
			failed <- -1
			return
		}
		failed <- resp.StatusCode
	}()
	r.waitState(t, fstaid.StateFailingOver)
	dead.Store(true)
	t0 := time.Now()
	// The loop waits for the failover from its next round on (one
	// interval, 50 ms, away at most), and that round's bound runs out
	// then: wait that long, then for a ping after it.
	time.Sleep(roundBound + 50*time.Millisecond)
	n.waitForAfter(t, "WATCHDOG=1", time.Now())
	msgs, at := n.snapshot()
	for i, m := range msgs {
		if at[i].After(t0) && strings.HasPrefix(m, "STATUS=armed") {
			t.Errorf("STATUS=armed during the manual failover: %q", m)
			break
		}
	}
	release()
	select {
	case code := <-failed:
		if code != 200 {
			t.Fatalf("POST /fail = %d, want 200", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("POST /fail not answered once the handler returned")
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("exit %d, want %d", code, exitFailedOver)
	}
	if c := e.calls(); len(c) != 1 {
		t.Errorf("handler calls %q, want one", c)
	}
}
