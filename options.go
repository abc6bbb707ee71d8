package fstaid

import (
	"fmt"
	"log/slog"
	"time"
)

// An Option configures a Monitor. Only this package makes Options; New
// applies them in order, then validates the result as a whole.
type Option interface {
	apply(*Monitor)
}

type optionFunc func(*Monitor)

func (f optionFunc) apply(m *Monitor) { f(m) }

// Defaults, as New sets them before applying options.
const (
	DefaultInterval    = time.Second
	DefaultMaxAttempts = 3
	DefaultLockTimeout = 30 * time.Second
	DefaultTarget      = "target"
)

// WithPrimary sets the primary check, run against the target up to
// WithMaxAttempts times a round, each attempt bounded by timeout.
// Required; timeout must be positive.
func WithPrimary(c Check, timeout time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.primary = checkSpec{name: "primary", check: c, timeout: timeout} })
}

// WithSecondary sets the optional secondary check: the target seen from
// another vantage point (through a bastion, say). When it passes, a dead
// primary does not fail over. Without it, a primary failure alone fails
// over, as in the original fstaid. timeout must be positive.
func WithSecondary(c Check, timeout time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.secondary = checkSpec{name: "secondary", check: c, timeout: timeout} })
}

// WithSelf sets the optional self check: is the monitor itself connected?
// It runs first in every round (failing: the monitor stops with
// ErrSelfCheck, or skips the round with WithContinueIfSelfCheckFailed)
// and again just before a failover (failing: no failover, monitoring
// goes on). timeout must be positive.
func WithSelf(c Check, timeout time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.self = checkSpec{name: "self", check: c, timeout: timeout} })
}

// WithHandler adds a failover handler. Handlers run in the order given,
// each bounded by its own timeout so that a slow one cannot starve the
// next; every failure is reported. At least one is required; name
// appears in logs and in the record; timeout must be positive.
func WithHandler(name string, h Handler, timeout time.Duration) Option {
	return optionFunc(func(m *Monitor) {
		m.handlers = append(m.handlers, handlerSpec{name: name, handler: h, timeout: timeout})
	})
}

// WithInterval sets the time between round starts, measured start to
// start: a slow round delays the next one, rounds never overlap, and
// check durations cause no drift. Default 1s; it must be positive.
func WithInterval(d time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.interval = d })
}

// WithMaxAttempts sets how many times a round tries the primary check
// before it counts as failed. Default 3; it must be at least 1.
func WithMaxAttempts(n int) Option {
	return optionFunc(func(m *Monitor) { m.maxAttempts = n })
}

// WithAttemptInterval sets the pause between two primary attempts (not
// after the last). Default 0, which is valid; negative is an error.
func WithAttemptInterval(d time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.attemptInterval = d })
}

// WithLock sets the failover lock, taken durably before any handler
// runs. Required: there is no default, least of all in a temporary
// directory. See NewFileLock.
func WithLock(l Lock) Option {
	return optionFunc(func(m *Monitor) { m.lock = l })
}

// WithLockTimeout bounds taking and updating the lock. Default 30s; it
// must be positive.
func WithLockTimeout(d time.Duration) Option {
	return optionFunc(func(m *Monitor) { m.lockTimeout = d })
}

// WithLogger sets the logger. Default slog.Default(); nil discards logs.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(m *Monitor) {
		if l == nil {
			l = discardLogger
		}
		m.logger = l
	})
}

// WithContinueIfSelfCheckFailed makes a failed self check at the start of
// a round skip the round instead of stopping the monitor. Default false,
// as in the original fstaid.
func WithContinueIfSelfCheckFailed(on bool) Option {
	return optionFunc(func(m *Monitor) { m.continueIfSelfFailed = on })
}

// A FailOption adjusts a manual failover (Monitor.Fail). Only this
// package makes FailOptions; Fail applies them in order.
type FailOption interface {
	apply(*failRequest)
}

type failOptionFunc func(*failRequest)

func (f failOptionFunc) apply(r *failRequest) { f(r) }

type failRequest struct {
	exitCode    int
	requestedBy string
	comment     string
}

// WithExitCode sets the exit status the handlers see for both checks of
// a manual failover (the original's /fail?exit=N). Default 1; any value
// is passed on as it is.
func WithExitCode(code int) FailOption {
	return failOptionFunc(func(r *failRequest) { r.exitCode = code })
}

// WithRequestedBy records who asked for a manual failover (a user, an
// address): Event.RequestedBy, in the record and the handler's
// environment (FSTAID_REQUESTED_BY). Default empty: not recorded.
func WithRequestedBy(who string) FailOption {
	return failOptionFunc(func(r *failRequest) { r.requestedBy = who })
}

// WithComment records the operator's reason for a manual failover, free
// text, in Record.Comment. Default empty: none. It is not passed to the
// handlers: a handler's interface stays the original's, and free text in
// an environment variable (a NUL byte, an oversized value) could keep
// the handler from starting at all.
func WithComment(text string) FailOption {
	return failOptionFunc(func(r *failRequest) { r.comment = text })
}

// StartupCheck chooses what Run does when the start-up check (self,
// primary and secondary once each) fails.
type StartupCheck int

const (
	// StartupCheckFail returns a *RoundError wrapping ErrStartupCheck, as
	// the original fstaid exits: a monitor armed against a target that is
	// already broken would fail over at once. The default.
	StartupCheckFail StartupCheck = iota
	// StartupCheckWait stays unarmed and retries every interval until the
	// start-up check passes. Manual failover works meanwhile.
	StartupCheckWait
	// StartupCheckOff arms at once, without a start-up check.
	StartupCheckOff
)

func (s StartupCheck) String() string {
	switch s {
	case StartupCheckFail:
		return "fail"
	case StartupCheckWait:
		return "wait"
	case StartupCheckOff:
		return "off"
	}
	return fmt.Sprintf("StartupCheck(%d)", int(s))
}

// WithStartupCheck sets the start-up check policy. Default
// StartupCheckFail.
func WithStartupCheck(s StartupCheck) Option {
	return optionFunc(func(m *Monitor) { m.startup = s })
}

// WithTarget names the target in logs, records and handler environments.
// Default "target".
func WithTarget(name string) Option {
	return optionFunc(func(m *Monitor) { m.target = name })
}

// WithObserver adds a function called on every lifecycle Notice (start,
// unarmed, armed, each check run, each round, failover started and
// finished, stopped).
// Observers are called synchronously, one notice at a time, in order;
// they must return quickly and must not call Run or Fail.
func WithObserver(f func(Notice)) Option {
	return optionFunc(func(m *Monitor) {
		if f != nil {
			m.observers = append(m.observers, f)
		}
	})
}
