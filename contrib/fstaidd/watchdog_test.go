package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// Issue 13, item 1, live: a manual failover (a planned switchover whose
// handler stops the old active, so the rounds then find the target dead)
// whose handler outlasts a round's bound. The watchdog pings must go on
// until the handler returns, and STATUS= must not say armed meanwhile:
// with WatchdogSec, systemd would otherwise SIGABRT fstaidd mid-handler.
func TestWatchdogPingsThroughManualFailover(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100 ms
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("FSTAID_TEST_HANDLER_SLEEP", "5")
	e := newEnv(t, 0, users)
	var dead atomic.Bool
	primary := fstaid.CheckFunc(func(ctx context.Context) error {
		if dead.Load() {
			return context.DeadlineExceeded
		}
		return nil
	})
	// RoundBound: 0.2 s + (1+3) × 0.5 s grace + 1 s = 3.2 s, well inside
	// the handler's 5 s.
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
	time.Sleep(4500 * time.Millisecond) // past the round bound, before the handler ends
	if p := n.pingsSince(t0.Add(3500 * time.Millisecond)); p == 0 {
		t.Errorf("no watchdog ping in the last second of a running manual failover: the watchdog would kill the handler")
	}
	msgs, at := n.snapshot()
	for i, m := range msgs {
		if at[i].After(t0) && strings.HasPrefix(m, "STATUS=armed") {
			t.Errorf("STATUS=armed during the manual failover: %q", m)
			break
		}
	}
	if code := <-failed; code != 200 {
		t.Fatalf("POST /fail = %d, want 200", code)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("exit %d, want %d", code, exitFailedOver)
	}
	if c := e.calls(); len(c) != 1 {
		t.Errorf("handler calls %q, want one", c)
	}
}
