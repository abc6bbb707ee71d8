package systemd

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// WatchdogInterval returns how often to ping the watchdog: half of
// WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, so that one late ping
// does not trip it. It returns (0, false) when the unit has no WatchdogSec,
// when WATCHDOG_PID names another process (a child that inherited the
// variables must not ping for its parent), and when the variables are
// malformed: a watchdog that cannot be honoured is better left unpinged
// than guessed at, and systemd will then say so by killing the service.
//
// The variables stay in the environment; WATCHDOG_PID keeps children from
// acting on them.
func WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	// WATCHDOG_USEC=1 would halve to 500ns; keep it positive for
	// time.NewTicker.
	return max(d/2, time.Nanosecond), true
}

// RunWatchdog sends WATCHDOG=1 through n every interval while
// healthy(now) is true, and skips the ping (but keeps checking at the same
// period) while it is false, so that a loop that is stuck stops the pings
// and systemd kills the process, while one that recovers in time resumes
// them. The first check is one interval after the call. It returns when
// ctx is done, or at once if interval is not positive.
//
// The daemon passes
//
//	func(now time.Time) bool {
//		dl := monitor.Status().Deadline
//		return dl.IsZero() || now.Before(dl) // zero: Run is not running
//	}
//
// Ping errors are ignored: there is no one to tell but systemd, and a ping
// that does not arrive is already what makes systemd act.
func RunWatchdog(ctx context.Context, n *Notifier, interval time.Duration, healthy func(time.Time) bool) {
	runWatchdog(ctx, n.Watchdog, interval, healthy)
}

// runWatchdog is RunWatchdog with the ping injected, so that the schedule
// can be tested under testing/synctest without a real socket (fake time
// does not advance while a goroutine sits in a syscall).
func runWatchdog(ctx context.Context, ping func() error, interval time.Duration, healthy func(time.Time) bool) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// time.Now, not the tick's time: if this goroutine ran late,
			// judge health as of the moment the ping would leave.
			if healthy(time.Now()) {
				_ = ping()
			}
		}
	}
}
