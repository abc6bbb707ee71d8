package main

import (
	"strings"
	"sync"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/systemd"
)

// statusLine keeps systemd's STATUS= in step with the monitor.
type statusLine struct {
	n      *systemd.Notifier
	target string
	last   string
	// blocked is why the last failover attempt could not take the lock
	// (etcd unreachable, say). It stays in STATUS= until the target is
	// healthy again or the monitor stops, so that `systemctl status` does
	// not just say "failing over" while no failover can happen.
	blocked string

	// mu orders observe with setReload, which the reloader calls.
	mu sync.Mutex
	// base is the line the last notice made; reload is appended to it
	// while the last reload failed (setReload), notReady while the last
	// readiness run found problems (notReadyLine) and the monitor is
	// armed or unarmed (watching: what readiness is about).
	base, reload, notReady string
	watching               bool
}

// observe is a fstaid.WithObserver function (never called concurrently).
func (s *statusLine) observe(n fstaid.Notice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case n.Kind == fstaid.NoticeCheck:
		return // a round's end speaks for its checks
	case n.Kind == fstaid.NoticeReadiness:
		s.notReady = notReadyLine(n.Readiness)
		s.send()
		return
	case n.Kind == fstaid.NoticeLockUnavailable && n.Err != nil:
		s.blocked = n.Err.Error()
	case n.Kind == fstaid.NoticeRound && n.Round != nil && n.Round.Verdict == fstaid.VerdictHealthy,
		n.State != fstaid.StateArmed && n.State != fstaid.StateFailingOver:
		s.blocked = ""
	}
	var line string
	switch n.State {
	case fstaid.StateStarting:
		line = "starting: start-up check of " + s.target
	case fstaid.StateUnarmed:
		line = "unarmed: " + n.Reason + " (POST /fail still fails over)"
	case fstaid.StateArmed:
		line = "armed: watching " + s.target
		if n.Round != nil && n.Round.Verdict != fstaid.VerdictHealthy && !n.Round.Startup {
			line += "; last round: " + string(n.Round.Verdict)
		}
	case fstaid.StateFailingOver:
		line = "failing over (" + n.Reason + ")"
	case fstaid.StateFailedOver:
		line = "failed over"
		if n.Record != nil {
			line += ": " + string(n.Record.State)
		}
	case fstaid.StateLocked:
		line = "locked: a failover record exists; re-arm with fstaidd unlock"
	default:
		line = string(n.State)
	}
	if s.blocked != "" {
		line += "; last attempt blocked: " + s.blocked
	}
	s.base = line
	s.watching = n.State == fstaid.StateArmed || n.State == fstaid.StateUnarmed
	s.send()
}

// setReload adds why the last reload failed to the line ("" after a
// good one: the line is the monitor's alone again). Safe to call from
// any goroutine.
func (s *statusLine) setReload(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload = why
	s.send()
}

// send sends the line when it changed; mu is held.
func (s *statusLine) send() {
	line := s.base
	if s.notReady != "" && s.watching {
		line += "; " + s.notReady
	}
	if s.reload != "" {
		line += "; " + s.reload
	}
	line = strings.ReplaceAll(line, "\n", " ")
	if line != s.last {
		s.n.Status(line)
		s.last = line
	}
}
