package fstaid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"
)

// Errors Run, Fail and New report. Each is wrapped by a typed error that
// carries the details; test with errors.Is and errors.As.
var (
	// ErrFailedOver: a failover ran (automatic or manual). Run returns a
	// *FailoverError for which errors.Is(err, ErrFailedOver) holds.
	ErrFailedOver = errors.New("fstaid: failed over")
	// ErrHandlerFailed: a failover ran and at least one handler failed
	// (a *FailoverError whose Err collects every handler error).
	ErrHandlerFailed = errors.New("fstaid: failover handler failed")
	// ErrStartupCheck: the start-up check failed (a *RoundError).
	ErrStartupCheck = errors.New("fstaid: start-up check failed")
	// ErrSelfCheck: the self check failed at the start of a round: the
	// monitor, not the target, is cut off (a *RoundError).
	ErrSelfCheck = errors.New("fstaid: self check failed")
	// ErrLockUnavailable: the lock cannot be read, probed or taken. No
	// handler runs without the lock.
	ErrLockUnavailable = errors.New("fstaid: failover lock unavailable")
	// ErrInvalidOption: New found a problem in the options.
	ErrInvalidOption = errors.New("fstaid: invalid option")
	// ErrRunning: Run was called while the Monitor was already running.
	ErrRunning = errors.New("fstaid: monitor already running")
)

// FailoverError reports a failover that ran: errors.Is(err,
// ErrFailedOver) always holds, errors.Is(err, ErrHandlerFailed) when a
// handler failed.
type FailoverError struct {
	// Record is the failover record, with each handler's outcome.
	Record *Record
	// Err collects the handler errors (a *multierror.Error), nil when
	// every handler succeeded.
	Err error
}

func (e *FailoverError) Error() string {
	if e.Err == nil {
		return "fstaid: failed over; every handler succeeded"
	}
	return "fstaid: failed over, but a handler failed: " + e.Err.Error()
}

// Is reports whether target is ErrFailedOver, or ErrHandlerFailed when a
// handler failed.
func (e *FailoverError) Is(target error) bool {
	return target == ErrFailedOver || target == ErrHandlerFailed && e.Err != nil
}

func (e *FailoverError) Unwrap() error { return e.Err }

// RoundError reports a round that stopped the monitor: Err is
// ErrStartupCheck or ErrSelfCheck.
type RoundError struct {
	Err   error
	Round *Round
}

func (e *RoundError) Error() string {
	return fmt.Sprintf("%v: %s", e.Err, e.Round.failures())
}

func (e *RoundError) Unwrap() error { return e.Err }

// State is where a Monitor is in its lifecycle.
type State string

const (
	StateNew         State = "new"          // Run not called yet
	StateStarting    State = "starting"     // checking the lock, then the start-up check
	StateUnarmed     State = "unarmed"      // the start-up check failed; retrying; manual failover works
	StateArmed       State = "armed"        // monitoring; a failed round fails over
	StateFailingOver State = "failing-over" // the lock is taken; handlers run
	StateFailedOver  State = "failed-over"  // done; a human re-arms
	StateLocked      State = "locked"       // a failover record exists; no check runs
	StateStopped     State = "stopped"      // Run returned without a failover
)

// Verdict is what a round concluded.
type Verdict string

const (
	VerdictHealthy         Verdict = "healthy"                 // the primary check passed
	VerdictSelfCheckFailed Verdict = "self-check-failed"       // step 1: the monitor is cut off
	VerdictSecondaryAlive  Verdict = "secondary-alive"         // dead from here, alive from the secondary
	VerdictSelfFailedAfter Verdict = "self-check-failed-after" // step 4: no failover, keep monitoring
	VerdictFailover        Verdict = "failover"                // every check agrees: fail over
	VerdictStartupPassed   Verdict = "startup-passed"          // the start-up check passed
	VerdictStartupFailed   Verdict = "startup-failed"          // the start-up check failed
	VerdictStopped         Verdict = "stopped"                 // cancelled mid-round
)

// Round is one monitoring round: what ran, what it found.
type Round struct {
	// Number counts rounds from 1; start-up rounds count too.
	Number uint64 `json:"number"`
	// Startup marks a start-up check round.
	Startup  bool          `json:"startup,omitempty"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Self is step 1's self check; SelfAfter is step 4's.
	Self      *Result `json:"self,omitempty"`
	Primary   *Result `json:"primary,omitempty"`
	Secondary *Result `json:"secondary,omitempty"`
	SelfAfter *Result `json:"self_after,omitempty"`
	Verdict   Verdict `json:"verdict"`
}

// failures describes the round's failed checks, for errors and STATUS=.
func (r *Round) failures() string {
	if r == nil {
		return "no round"
	}
	var s string
	for _, res := range []*Result{r.Self, r.Primary, r.Secondary, r.SelfAfter} {
		if res == nil || res.Passed {
			continue
		}
		if s != "" {
			s += "; "
		}
		if res.TimedOut {
			s += res.Name + " check timed out"
		} else {
			s += fmt.Sprintf("%s check failed (exit %d)", res.Name, res.ExitStatus)
		}
		if res.Error != "" {
			s += ": " + res.Error
		}
	}
	if s == "" {
		return "every check passed"
	}
	return s
}

// NoticeKind says what a Notice announces.
type NoticeKind string

const (
	NoticeStarted          NoticeKind = "started"           // the lock is free; the start-up check begins
	NoticeUnarmed          NoticeKind = "unarmed"           // the start-up check failed; waiting
	NoticeArmed            NoticeKind = "armed"             // monitoring
	NoticeCheck            NoticeKind = "check"             // a check ran: each attempt of the primary, too (Result is set)
	NoticeRound            NoticeKind = "round"             // a round finished (Round is set)
	NoticeFailoverStarted  NoticeKind = "failover-started"  // deciding to fail over; the lock is being taken
	NoticeLockTaken        NoticeKind = "lock-taken"        // the lock is taken: the handlers run now (Record is set)
	NoticeFailoverFinished NoticeKind = "failover-finished" // the handlers returned (Record is set)
	NoticeLocked           NoticeKind = "locked"            // a failover record exists (Record is set)
	NoticeLockUnavailable  NoticeKind = "lock-unavailable"  // the lock could not be taken: no handler ran (Err is set)
	NoticeStopped          NoticeKind = "stopped"           // Run returned (Err is its result)
	NoticeReadiness        NoticeKind = "readiness"         // readiness changed (Readiness is set; WithReadiness)
)

// Notice is a lifecycle event, for observers (WithObserver): the systemd
// layer, metrics.
type Notice struct {
	Kind  NoticeKind
	Time  time.Time
	State State
	// Reason explains the state (why unarmed, for example).
	Reason string
	Round  *Round
	// Result is the outcome of one check run (NoticeCheck). The Monitor
	// reuses it for the next attempt: an observer copies what it keeps.
	Result *Result
	Record *Record
	Err    error
	// Readiness is the new readiness (NoticeReadiness).
	Readiness *Readiness
}

// Status is a snapshot of a Monitor.
type Status struct {
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	Target string `json:"target"`
	// Rounds counts the rounds run.
	Rounds uint64 `json:"rounds"`
	// LastRound is the last finished round.
	LastRound *Round `json:"last_round,omitempty"`
	// Record is the failover record, when there is one.
	Record *Record `json:"record,omitempty"`
	// Deadline is when the loop must next make progress; past it, the
	// loop is hung (a check ignoring its context, a lock that hangs).
	// Zero when Run is not running, also while a Fail runs without it.
	// While a failover runs, automatic or manual, it is never earlier
	// than that failover's own bound (its start + FailoverBound). The
	// systemd watchdog pings only before it.
	Deadline time.Time `json:"deadline,omitzero"`
	// Readiness is what the last readiness run found: nil without
	// WithReadiness and before the first run.
	Readiness *Readiness `json:"readiness,omitempty"`
}

type checkSpec struct {
	name    string
	check   Check
	timeout time.Duration
	logger  *slog.Logger
}

func (c *checkSpec) set() bool { return c.check != nil }

type handlerSpec struct {
	name    string
	handler Handler
	timeout time.Duration
	logger  *slog.Logger
}

// Monitor watches one target and fails over at most once. Build it with
// New; its methods are safe for concurrent use.
type Monitor struct {
	primary, secondary, self checkSpec
	handlers                 []handlerSpec
	interval                 time.Duration
	attemptInterval          time.Duration
	maxAttempts              int
	lock                     Lock
	lockTimeout              time.Duration
	logger                   *slog.Logger
	continueIfSelfFailed     bool
	startup                  StartupCheck
	target                   string
	observers                []func(Notice)
	host                     string

	running  atomic.Bool
	deadline atomic.Int64 // unix nanoseconds: where the loop must be next; 0 before Run sets it

	// gate owns the failover: at most one at a time, at most once.
	gate *failoverGate
	// ready schedules readiness runs between rounds (readiness.go).
	ready readiness

	mu        sync.Mutex // guards the fields below
	state     State
	reason    string
	rounds    uint64
	lastRound *Round
	record    *Record
	// held is the last state the loop published while a failover ran:
	// not shown then, restored if that failover does not end for good.
	held *Notice
	// loopCancel ends the running Run's loop; finish calls it, so an
	// in-flight check stops as soon as a failover through Fail ends.
	loopCancel context.CancelFunc

	// obsMu serialises observers, and orders each state change with its
	// notice: taken before mu by every publication.
	obsMu sync.Mutex

	// settingsMu guards what Reconfigure changes (checks, handlers,
	// timing) against readers outside the loop; the loop, the only
	// writer (between rounds, holding the gate), reads without it.
	settingsMu sync.RWMutex
	// reconf hands Reconfigure's requests to the running loop.
	reconf reconfigSlot
}

// New returns a Monitor. It sets the defaults, applies opts in order and
// then validates everything at once: the error lists every problem
// (errors.Is(err, ErrInvalidOption)).
func New(opts ...Option) (*Monitor, error) {
	m := &Monitor{
		interval:    DefaultInterval,
		maxAttempts: DefaultMaxAttempts,
		lockTimeout: DefaultLockTimeout,
		logger:      slog.Default(),
		target:      DefaultTarget,
		state:       StateNew,
		gate:        newFailoverGate(),
	}
	for _, o := range opts {
		o.apply(m)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	m.host, _ = os.Hostname()
	m.setLoggers()
	m.initReadiness()
	return m, nil
}

func (m *Monitor) validate() error {
	var errs *multierror.Error
	bad := func(format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	if !m.primary.set() {
		bad("no primary check (WithPrimary)")
	}
	for _, c := range []*checkSpec{&m.primary, &m.secondary, &m.self} {
		if c.name == "" {
			continue // not configured
		}
		if c.check == nil {
			bad("%s check is nil", c.name)
			continue
		}
		if c.timeout <= 0 {
			bad("%s check timeout must be positive, got %v", c.name, c.timeout)
		}
		if v, ok := c.check.(validator); ok {
			if err := v.validate(); err != nil {
				bad("%s check: %v", c.name, err)
			}
		}
	}
	if len(m.handlers) == 0 {
		bad("no handler (WithHandler)")
	}
	names := map[string]bool{}
	for i, h := range m.handlers {
		label := fmt.Sprintf("handler %d %q", i+1, h.name)
		if h.name == "" {
			bad("handler %d has no name", i+1)
		} else if names[h.name] {
			bad("%s: duplicate name", label)
		}
		names[h.name] = true
		if h.handler == nil {
			bad("%s is nil", label)
			continue
		}
		if h.timeout <= 0 {
			bad("%s: timeout must be positive, got %v", label, h.timeout)
		}
		if v, ok := h.handler.(validator); ok {
			if err := v.validate(); err != nil {
				bad("%s: %v", label, err)
			}
		}
	}
	if m.interval <= 0 {
		bad("interval must be positive, got %v", m.interval)
	}
	if m.maxAttempts < 1 {
		bad("max attempts must be at least 1, got %d", m.maxAttempts)
	}
	if m.attemptInterval < 0 {
		bad("attempt interval must not be negative, got %v", m.attemptInterval)
	}
	if m.lock == nil {
		bad("no failover lock (WithLock)")
	} else if v, ok := m.lock.(validator); ok {
		if err := v.validate(); err != nil {
			bad("%v", err)
		}
	}
	if m.lockTimeout <= 0 {
		bad("lock timeout must be positive, got %v", m.lockTimeout)
	}
	if m.startup < StartupCheckFail || m.startup > StartupCheckOff {
		bad("unknown start-up check policy %v", m.startup)
	}
	m.ready.validate(bad)
	return errs.ErrorOrNil()
}

// RoundBound is the longest a round can take when every check runs to
// its timeout: attempts × primary timeout + the pauses between attempts
// + the secondary timeout + twice the self timeout, plus a margin for
// killing processes and draining their output.
func (m *Monitor) RoundBound() time.Duration {
	m.settingsMu.RLock()
	defer m.settingsMu.RUnlock()
	n := time.Duration(m.maxAttempts)
	d := n*m.primary.timeout + (n-1)*m.attemptInterval + m.secondary.timeout + 2*m.self.timeout
	return d + time.Duration(m.maxAttempts+3)*outputGrace + time.Second
}

// FailoverBound is the longest a failover can take: taking and updating
// the lock, and every handler's timeout, plus a margin.
func (m *Monitor) FailoverBound() time.Duration {
	m.settingsMu.RLock()
	defer m.settingsMu.RUnlock()
	d := 2 * m.lockTimeout
	for _, h := range m.handlers {
		d += h.timeout + outputGrace
	}
	return d + time.Second
}

// Status returns a snapshot of the monitor.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		State:     m.state,
		Reason:    m.reason,
		Target:    m.target,
		Rounds:    m.rounds,
		LastRound: m.lastRound,
		Record:    m.record,
	}
	s.Deadline = m.currentDeadline()
	s.Readiness = m.lastReadiness()
	return s
}

// currentDeadline is the watchdog's deadline: zero unless Run runs; the
// loop's own, or the running failover's bound when that is later (a
// failover, whoever started it, is never cut short by the watchdog).
func (m *Monitor) currentDeadline() time.Time {
	if !m.running.Load() {
		return time.Time{}
	}
	d := max(m.deadline.Load(), m.gate.bound())
	if d == 0 {
		return time.Time{}
	}
	return time.Unix(0, d)
}

// setDeadline sets the loop's deadline: the time by which it must have
// made progress.
func (m *Monitor) setDeadline(t time.Time) { m.deadline.Store(t.UnixNano()) }

// setState records the state and tells the observers. The failover and
// Run's own start and end publish through it.
func (m *Monitor) setState(n Notice) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	m.mu.Lock()
	m.apply(&n)
	m.mu.Unlock()
	m.notifyLocked(n)
}

// loopState is setState for what the rounds conclude. While a failover
// runs, and once one has ended, it publishes nothing: the state stays
// failing-over (then failed-over or locked), and what the loop said is
// held until an attempt ends without a failover (endAttempt).
func (m *Monitor) loopState(n Notice) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	m.mu.Lock()
	if m.gate.running() || m.gate.ended() {
		// A copy made here, not &n: taking n's address would move every
		// round's notice to the heap.
		held := n
		m.held = &held
		m.mu.Unlock()
		return
	}
	m.apply(&n)
	m.mu.Unlock()
	m.notifyLocked(n)
}

// apply writes n to the Monitor's state; mu is held.
func (m *Monitor) apply(n *Notice) {
	m.state, m.reason = n.State, n.Reason
	if n.Round != nil {
		m.lastRound = n.Round
		m.rounds = n.Round.Number
	}
	if n.Record != nil {
		m.record = n.Record
	}
}

func (m *Monitor) currentState() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// notify tells the observers of n without changing the state.
func (m *Monitor) notify(n Notice) {
	if len(m.observers) == 0 {
		return
	}
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	m.notifyLocked(n)
}

// notifyLocked calls the observers; obsMu is held.
func (m *Monitor) notifyLocked(n Notice) {
	if len(m.observers) == 0 {
		return
	}
	if n.Time.IsZero() {
		n.Time = time.Now()
	}
	for _, f := range m.observers {
		f(n)
	}
}

// lockName describes the lock for messages.
func (m *Monitor) lockName() string { return describeLock(m.lock) }

// Run monitors the target until a failover, a stop condition or the
// cancellation of ctx. In order:
//
//  1. If the lock holds a record, Run returns a *LockedError (ErrLocked)
//     at once; no check runs. If the lock cannot be read or probed, it
//     returns an error wrapping ErrLockUnavailable.
//  2. The start-up check runs self, primary and secondary once each; see
//     WithStartupCheck for what a failure does.
//  3. Armed, a round starts every interval (start to start).
//
// Run returns:
//   - nil when ctx is cancelled and no failover has begun;
//   - a *FailoverError (ErrFailedOver, and ErrHandlerFailed when a handler
//     failed) once a failover ran, automatic or through Fail. A failover
//     that has begun finishes whatever happens to ctx, and Run reports it;
//   - a *LockedError when another writer took the lock first: found by
//     this Monitor's own Acquire, or, with a lock that is a LockWatcher
//     (etcd), announced while this Monitor was still watching;
//   - a *RoundError wrapping ErrStartupCheck or ErrSelfCheck.
//
// Run may be called again after it returned nil.
func (m *Monitor) Run(ctx context.Context) (err error) {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	defer func() {
		m.deadline.Store(0)
		st := m.currentState()
		if st != StateFailedOver && st != StateLocked {
			st = StateStopped
		}
		m.setState(Notice{Kind: NoticeStopped, State: st, Err: err, Reason: m.Status().Reason})
	}()

	if _, err := m.gate.result(); err != nil {
		return err
	}
	m.setState(Notice{Kind: NoticeStarted, State: StateStarting})
	if err := m.checkLock(ctx); err != nil {
		return err
	}

	// loopCtx also ends when a failover (through Fail) ends, so an
	// in-flight check stops at once: finish cancels it (no goroutine
	// waits for the gate).
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer m.stopReadiness()
	m.mu.Lock()
	m.loopCancel = cancel
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.loopCancel = nil
		m.mu.Unlock()
	}()
	if _, err := m.gate.result(); err != nil {
		cancel() // a failover ended before loopCancel was set
	}
	if w, ok := m.lock.(LockWatcher); ok {
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			m.watchLock(loopCtx, w)
		}()
		defer func() { cancel(); <-watched }()
	}
	// Each check's context carries its logger; made once per Run (and
	// per reconfiguration) rather than once per check.
	checkCtx := m.checkContexts(loopCtx)
	// From here Reconfigure hands its options to the loop, which applies
	// them between rounds (betweenRounds).
	defer m.reconf.open()()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	// beforeRound lets a running failover finish before a round starts:
	// false when Run must return (that failover ended for good, or ctx
	// did). A wait restarts the schedule from now.
	next := time.Now()
	beforeRound := func() bool {
		if !m.gate.running() {
			return true
		}
		if !m.gate.wait(loopCtx) {
			return false
		}
		if _, err := m.gate.result(); err != nil {
			return false
		}
		if now := time.Now(); now.After(next) {
			next = now
		}
		m.setDeadline(next.Add(m.RoundBound()))
		return true
	}

	var n uint64
	// prev is the start of the last round (zero before the first): a
	// new interval counts from it.
	var prev time.Time
	if m.startup != StartupCheckOff {
		for {
			m.setDeadline(next.Add(m.RoundBound()))
			if !beforeRound() {
				return m.stopped()
			}
			n++
			r := m.startupRound(loopCtx, &checkCtx, n, next)
			if r.Verdict == VerdictStopped {
				return m.stopped()
			}
			if r.Verdict == VerdictStartupPassed {
				m.loopState(Notice{Kind: NoticeRound, State: StateStarting, Round: r})
				break
			}
			if m.startup == StartupCheckFail {
				m.logger.Error("start-up check failed; not arming", "event", "startup-check-failed", "reason", r.failures())
				if err := m.stopRun(); err != nil {
					return err // a manual failover ran meanwhile
				}
				m.setState(Notice{Kind: NoticeRound, State: StateStopped, Round: r})
				return &RoundError{Err: ErrStartupCheck, Round: r}
			}
			reason := "start-up check failed: " + r.failures()
			m.logger.Warn("unarmed: start-up check failed; retrying every interval", "event", "unarmed", "reason", r.failures(), "interval", m.interval)
			m.loopState(Notice{Kind: NoticeUnarmed, State: StateUnarmed, Reason: reason, Round: r})
			prev := next
			next = m.nextStart(prev)
			m.setDeadline(next.Add(m.RoundBound()))
			if !m.waitRound(loopCtx, timer, prev, &next, &checkCtx) {
				return m.stopped()
			}
		}
		prev, next = next, m.nextStart(next)
	}
	m.logger.Info("armed", "event", "armed", "target", m.target, "interval", m.interval, "max_attempts", m.maxAttempts)
	m.loopState(Notice{Kind: NoticeArmed, State: StateArmed})

	for {
		m.setDeadline(next.Add(m.RoundBound()))
		m.betweenRounds(loopCtx, next)
		if !m.waitRound(loopCtx, timer, prev, &next, &checkCtx) || !beforeRound() {
			return m.stopped()
		}
		n++
		r := m.round(loopCtx, &checkCtx, timer, n, next)
		switch r.Verdict {
		case VerdictStopped:
			return m.stopped()
		case VerdictHealthy:
			// Enabled first: the arguments would be boxed (allocated)
			// every round even with Debug off.
			if m.logger.Enabled(loopCtx, slog.LevelDebug) {
				m.logger.Debug("round healthy", "round", r.Number, "attempts", r.Primary.Attempts, "duration", r.Duration)
			}
		case VerdictSelfCheckFailed:
			if !m.continueIfSelfFailed {
				m.logger.Error("self check failed: this monitor is cut off; stopping without failover", "event", "self-check-failed", "round", r.Number, "reason", r.failures())
				if err := m.stopRun(); err != nil {
					return err // a manual failover ran meanwhile
				}
				m.setState(Notice{Kind: NoticeRound, State: StateStopped, Round: r})
				return &RoundError{Err: ErrSelfCheck, Round: r}
			}
			m.logger.Warn("self check failed: skipping the round (continue_if_self_check_failed)", "event", "self-check-failed", "round", r.Number, "reason", r.failures())
		case VerdictSecondaryAlive:
			m.logger.Warn("TARGET LOOKS DEAD FROM HERE BUT ALIVE FROM THE SECONDARY VANTAGE POINT: no failover; check this monitor's path to the target",
				"event", "secondary-alive", "round", r.Number, "reason", r.failures())
		case VerdictSelfFailedAfter:
			m.logger.Warn("target failed, but the self check failed after it: no failover; monitoring goes on", "event", "self-check-failed-after", "round", r.Number, "reason", r.failures())
		case VerdictFailover:
			m.loopState(Notice{Kind: NoticeRound, State: StateArmed, Round: r})
			m.logger.Error("target is dead: failing over", "event", "target-dead", "round", r.Number, "reason", r.failures())
			_, ferr, _ := m.failover(loopCtx, &failoverAttempt{ev: m.autoEvent(r)})
			if _, done := m.gate.result(); done != nil {
				// This failover, or a manual one that won the race.
				return done
			}
			if loopCtx.Err() != nil {
				return m.stopped()
			}
			// The lock could not be taken: no handler ran. Fail closed
			// and keep monitoring.
			m.logger.Error("no failover: the lock could not be taken", "event", "lock-unavailable", "error", ferr)
			m.loopState(Notice{Kind: NoticeArmed, State: StateArmed, Reason: ferr.Error()})
			prev, next = next, m.nextStart(next)
			continue
		}
		m.loopState(Notice{Kind: NoticeRound, State: StateArmed, Round: r})
		prev, next = next, m.nextStart(next)
	}
}

// stopRun is called before Run stops on its own (a failed start-up or
// self check): a failover in progress finishes first, and its result is
// Run's instead.
func (m *Monitor) stopRun() error {
	m.gate.wait(context.Background())
	_, err := m.gate.result()
	return err
}

// checkLock makes the lock's pre-flight (Preflight): it refuses to start
// on a lock that cannot be read, on a record, and on a lock that cannot
// be written or made durable, in that order, and warns about a lock that
// would not survive a reboot. A record of this Monitor's own (a Fail
// whose reply was lost) is a failover to finish, not a stranger's.
func (m *Monitor) checkLock(ctx context.Context) error {
	// A Fail may be taking the lock right now: let it finish, so that
	// Run reports that failover.
	if !m.gate.wait(ctx) {
		return nil
	}
	if _, err := m.gate.result(); err != nil {
		return err
	}
	// A lock that hangs (NFS) must stop the watchdog's pings too.
	m.setDeadline(time.Now().Add(m.lockTimeout + time.Second))
	lctx, cancel := context.WithTimeout(ctx, m.lockTimeout)
	defer cancel()
	rec, err := Preflight(lctx, m.lock)
	problems := preflightProblems(err)
	if err := problems[LockReadable]; err != nil {
		return fmt.Errorf("%w: %s: %w", ErrLockUnavailable, m.lockName(), err)
	}
	if rec != nil && m.gate.ours(rec) {
		m.logger.Warn("the failover record is this monitor's own, from an attempt whose answer was lost: finishing that failover", "event", "own-record", "lock", m.lockName())
		_, err, _ := m.failover(ctx, nil)
		return err
	}
	if rec != nil {
		lerr := &LockedError{Lock: m.lockName(), Record: rec}
		m.logger.Error("refusing to start", "event", "locked", "error", lerr)
		m.setState(Notice{Kind: NoticeLocked, State: StateLocked, Record: rec, Reason: lerr.Error()})
		return lerr
	}
	for _, p := range []LockProperty{LockWritable, LockDurable} {
		if err := problems[p]; err != nil {
			return fmt.Errorf("%w: %s is not writable: %w", ErrLockUnavailable, m.lockName(), err)
		}
	}
	if err := problems[LockPersistent]; err != nil {
		m.logger.Warn("LOCK IS NOT PERSISTENT: "+err.Error(), "lock", m.lockName())
	}
	return nil
}

// nextStart is when the round after one scheduled at prev starts: one
// interval later, or now if that has passed (a slow round delays the next
// one; they never overlap).
func (m *Monitor) nextStart(prev time.Time) time.Time {
	next := prev.Add(m.interval)
	if now := time.Now(); now.After(next) {
		return now
	}
	return next
}

func (m *Monitor) sleep(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}

// stopped is Run's result once its loop context ended: the failover's
// result if one ran (waiting for one in flight), else nil.
func (m *Monitor) stopped() error {
	return m.stopRun()
}

// watchLock acts on the record a LockWatcher announces. This Monitor's
// own record (its ID) is either its running failover or an attempt whose
// answer was lost but which committed: the failover is finished here,
// handlers and all. Another writer's record stops the monitor, as if its
// own Acquire had found it.
func (m *Monitor) watchLock(ctx context.Context, w LockWatcher) {
	var rec *Record
	select {
	case <-ctx.Done():
		return
	case r, ok := <-w.Watch(ctx):
		if !ok || r == nil {
			return
		}
		rec = r
	}
	if m.gate.ours(rec) {
		m.resume(ctx)
		return
	}
	// A failover of this Monitor holds the gate until it has ended; its
	// result decides.
	if held, _, _ := m.gate.begin(ctx, m.lockTimeout); !held {
		return
	}
	le := &LockedError{Lock: m.lockName(), Record: rec}
	m.logger.Error("another monitor took the failover lock: stopping without running the handlers", "event", "locked", "error", le)
	m.setState(Notice{Kind: NoticeLocked, State: StateLocked, Record: rec, Reason: le.Error()})
	m.finish(rec, le)
}

// resume finishes this Monitor's failover whose record exists: it
// retries the attempt (the lock recognises the record by its ID) every
// interval until it has ended for good or ctx ends.
func (m *Monitor) resume(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.failover(ctx, nil)
		if _, err := m.gate.result(); err != nil || !m.sleep(ctx, timer, m.currentInterval()) {
			return
		}
		m.logger.Warn("retrying the failover whose record this monitor created", "event", "own-record", "lock", m.lockName())
	}
}

// checkContexts are Run's loop context with each check's logger in it
// (withLogger), made once per Run.
type checkContexts struct {
	self, primary, secondary context.Context
}

func (cc *checkContexts) of(m *Monitor, c *checkSpec) context.Context {
	switch c {
	case &m.self:
		return cc.self
	case &m.secondary:
		return cc.secondary
	}
	return cc.primary
}

// runCheck runs one check with its timeout and writes the outcome to res.
// lctx is ctx with the check's logger (checkContexts).
func (m *Monitor) runCheck(ctx, lctx context.Context, c *checkSpec, res *Result) {
	*res = Result{Name: c.name, Start: time.Now()}
	cctx, cancel := context.WithTimeout(lctx, c.timeout)
	err := callCheck(cctx, c.check)
	res.Duration = time.Since(res.Start)
	timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()
	switch {
	case timedOut:
		res.ExitStatus, res.TimedOut = -1, true
		res.Error = fmt.Sprintf("timed out after %v", c.timeout)
		var ce *CheckError
		if errors.As(err, &ce) {
			res.HTTPStatus = ce.HTTPStatus
		}
	case err == nil:
		res.Passed = true
	default:
		res.ExitStatus = 1
		var ce *CheckError
		if errors.As(err, &ce) {
			res.ExitStatus, res.HTTPStatus = ce.ExitStatus, ce.HTTPStatus
		}
		res.Error = err.Error()
	}
	// A check cut short by Stop says nothing about the target.
	if ctx.Err() != nil {
		return
	}
	if len(m.observers) > 0 {
		m.notify(Notice{Kind: NoticeCheck, State: m.currentState(), Result: res})
	}
	if !res.Passed {
		c.logger.Warn("check failed", "event", "check-failed", "exit_status", res.ExitStatus, "timed_out", res.TimedOut, "error", res.Error, "duration", res.Duration)
	}
}

func callCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return c.Check(ctx)
}

// roundStore holds a Round and the results of a healthy round's checks
// in one allocation; the rarer secondary and second self results are
// allocated when they run.
type roundStore struct {
	Round
	self, primary Result
}

// startupRound runs self, primary and secondary once each; all must pass.
func (m *Monitor) startupRound(ctx context.Context, cc *checkContexts, n uint64, start time.Time) *Round {
	rs := &roundStore{Round: Round{Number: n, Startup: true, Start: start}}
	r := &rs.Round
	run := func(c *checkSpec, res *Result) *Result {
		if !c.set() || ctx.Err() != nil {
			return nil
		}
		if res == nil {
			res = new(Result)
		}
		m.runCheck(ctx, cc.of(m, c), c, res)
		return res
	}
	r.Self = run(&m.self, &rs.self)
	r.Primary = run(&m.primary, &rs.primary)
	r.Secondary = run(&m.secondary, nil)
	r.Duration = time.Since(start)
	switch {
	case ctx.Err() != nil:
		r.Verdict = VerdictStopped
	case r.Self.Failed() || r.Primary.Failed() || r.Secondary.Failed():
		r.Verdict = VerdictStartupFailed
	default:
		r.Verdict = VerdictStartupPassed
	}
	return r
}

// round runs steps 1 to 4 of a monitoring round and says what to do.
func (m *Monitor) round(ctx context.Context, cc *checkContexts, timer *time.Timer, n uint64, start time.Time) *Round {
	rs := &roundStore{Round: Round{Number: n, Start: start}}
	r := &rs.Round
	r.Verdict = m.roundSteps(ctx, cc, timer, rs)
	if ctx.Err() != nil {
		r.Verdict = VerdictStopped
	}
	r.Duration = time.Since(start)
	return r
}

func (m *Monitor) roundSteps(ctx context.Context, cc *checkContexts, timer *time.Timer, rs *roundStore) Verdict {
	r := &rs.Round
	// 1. Am I connected?
	if m.self.set() {
		res := &rs.self
		m.runCheck(ctx, cc.self, &m.self, res)
		r.Self = res
		if !res.Passed {
			return VerdictSelfCheckFailed
		}
	}
	// 2. The target, up to maxAttempts times. Each attempt overwrites
	// the last: the round reports the last attempt.
	for attempt := 1; ; attempt++ {
		res := &rs.primary
		m.runCheck(ctx, cc.primary, &m.primary, res)
		res.Attempts = attempt
		r.Primary = res
		if ctx.Err() != nil {
			return VerdictStopped
		}
		if res.Passed {
			return VerdictHealthy
		}
		if attempt >= m.maxAttempts {
			break
		}
		if !m.sleep(ctx, timer, m.attemptInterval) {
			return VerdictStopped
		}
	}
	// 3. The target from the other vantage point.
	if m.secondary.set() {
		res := new(Result)
		m.runCheck(ctx, cc.secondary, &m.secondary, res)
		r.Secondary = res
		if res.Passed {
			return VerdictSecondaryAlive
		}
	}
	// 4. Still connected?
	if m.self.set() {
		res := new(Result)
		m.runCheck(ctx, cc.self, &m.self, res)
		r.SelfAfter = res
		if !res.Passed {
			return VerdictSelfFailedAfter
		}
	}
	return VerdictFailover
}

func (m *Monitor) autoEvent(r *Round) *Event {
	ev := &Event{
		Reason:     ReasonAuto,
		Target:     m.target,
		Time:       time.Now(),
		RoundStart: r.Start,
		Primary:    *r.Primary,
		Secondary:  skippedResult("secondary"),
		Self:       r.SelfAfter,
	}
	if r.Secondary != nil {
		ev.Secondary = *r.Secondary
	}
	return ev
}

// Fail fails over at once, without checks, whether or not Run is running
// and whether it is armed. Failovers are serialised with the loop and
// with each other: whatever the concurrency, the handlers run at most once
// per lock. ctx bounds only the wait for another failover in progress:
// if it ends before this failover begins, Fail returns ctx's error and
// nothing ran; once this one begins it runs to completion on a context
// ctx's cancellation does not reach. While it runs no round starts or
// publishes a state (Status().State is failing-over), and Run's
// deadline covers it.
//
// Every attempt of a Monitor writes the same Record.ID: when an attempt
// failed with the lock's answer lost (ErrLockUnavailable) but its record
// was created, the next attempt (another Fail, a failing round, Run's
// start-up check, or the LockWatcher announcing the record) recognises it
// as this Monitor's own and runs the handlers.
//
// Fail returns:
//   - (rec, nil) when it ran the failover and every handler succeeded;
//   - (rec, *FailoverError) when it ran it and a handler failed
//     (ErrHandlerFailed);
//   - (rec, *LockedError) when a failover already happened, here or by
//     another writer of the lock (ErrLocked); rec is that record;
//   - (nil, err) when the lock could not be taken (ErrLockUnavailable; no
//     handler ran) or ctx ended before this failover began.
func (m *Monitor) Fail(ctx context.Context, opts ...FailOption) (*Record, error) {
	req := failRequest{exitCode: 1}
	for _, o := range opts {
		o.apply(&req)
	}
	manual := Result{ExitStatus: req.exitCode}
	ev := &Event{
		Reason:      ReasonManual,
		Target:      m.target,
		Time:        time.Now(),
		Primary:     manual,
		Secondary:   manual,
		RequestedBy: req.requestedBy,
	}
	ev.Primary.Name, ev.Secondary.Name = "primary", "secondary"
	rec, err, ran := m.failover(ctx, &failoverAttempt{ev: ev, comment: req.comment})
	var fe *FailoverError
	switch {
	case ran && errors.As(err, &fe) && fe.Err == nil:
		return rec, nil
	case ran:
		return rec, err
	case errors.As(err, &fe):
		return rec, &LockedError{Lock: m.lockName(), Record: rec}
	}
	return rec, err
}

// failoverAttempt is what one failover attempt writes: the handlers'
// event, and the operator's comment for a manual one.
type failoverAttempt struct {
	ev      *Event
	comment string
}

// failover takes the lock, runs the handlers and records their outcome,
// at most once per Monitor. a is nil to retry the last attempt (its
// record exists: resume, checkLock). ran reports whether this call ran
// the handlers. Once it has ended for good (handlers ran, or the lock was
// found held), every later call returns the same result.
func (m *Monitor) failover(ctx context.Context, a *failoverAttempt) (rec *Record, err error, ran bool) {
	held, rec, err := m.gate.begin(ctx, m.FailoverBound())
	if !held {
		return rec, err, false
	}
	m.interruptReadiness()
	a = m.gate.attempt(a)
	if a == nil {
		m.gate.end()
		return nil, fmt.Errorf("%w: no failover attempt to resume", ErrLockUnavailable), false
	}
	ev := a.ev

	// From here the failover runs to completion whatever the caller does.
	ctx = context.WithoutCancel(ctx)
	prev := m.Status()
	rec = &Record{ID: m.gate.id, State: RecordFailingOver, Time: time.Now(), Host: m.host, PID: os.Getpid(), Event: ev, Comment: a.comment, Readiness: m.lastReadiness()}
	// From begin on, whatever the loop publishes is held back (loopState).
	m.setState(Notice{Kind: NoticeFailoverStarted, State: StateFailingOver, Reason: string(ev.Reason)})

	lctx, cancel := context.WithTimeout(ctx, m.lockTimeout)
	err = m.lock.Acquire(lctx, rec)
	cancel()
	var le *LockedError
	switch {
	case err == nil:
	case errors.Is(err, ErrLockNotDurable):
		// Published, so taken: no other writer can take it now. Not
		// failing over would leave the monitor armed with a record on
		// disk that blocks every later attempt.
		m.logger.Error("FAILOVER LOCK TAKEN BUT NOT DURABLE: running the handlers anyway; a crash now may lose the record and re-arm the monitor", "event", "lock-not-durable", "lock", m.lockName(), "error", err)
		rec.Warnings = append(rec.Warnings, err.Error())
	case errors.As(err, &le) && le.Record != nil && m.gate.ours(le.Record):
		// Our own earlier attempt committed, and this lock does not
		// recognise it: the record is ours all the same (only this
		// Monitor draws its ID), so the handlers run.
		m.logger.Warn("the failover record is this monitor's own, from an attempt whose answer was lost; the lock did not recognise it, so updates of it may fail", "event", "own-record", "lock", m.lockName())
		rec.Warnings = append(rec.Warnings, "the lock did not recognise this monitor's own record: "+err.Error())
	case le != nil:
		m.logger.Error("another writer holds the failover lock: not running the handlers", "event", "locked", "error", le)
		m.setState(Notice{Kind: NoticeLocked, State: StateLocked, Record: le.Record, Reason: le.Error()})
		m.finish(le.Record, le)
		return le.Record, le, false
	default:
		err = fmt.Errorf("%w: %s: %w", ErrLockUnavailable, m.lockName(), err)
		m.endAttempt(prev, err)
		return nil, err, false
	}
	m.logger.Warn("failover lock taken; running handlers", "event", "failover-started", "lock", m.lockName(), "reason", ev.Reason)
	m.notify(Notice{Kind: NoticeLockTaken, State: StateFailingOver, Reason: string(ev.Reason), Record: m.publishRecord(rec)})

	var errs *multierror.Error
	lost := m.lock.Done()
	for i := range m.handlers {
		h := &m.handlers[i]
		out, herr := m.runHandler(ctx, h, ev)
		rec.Handlers = append(rec.Handlers, out)
		if herr != nil {
			errs = multierror.Append(errs, fmt.Errorf("handler %s: %w", h.name, herr))
		}
		select {
		case <-lost:
			rec.LockLost = true
		default:
		}
		m.publishRecord(rec)
	}
	rec.Finished = time.Now()
	rec.State = RecordDone
	if errs != nil {
		rec.State = RecordHandlerFailed
	}
	if err := m.updateRecord(ctx, rec); err != nil {
		m.logger.Error("failover done, but the record could not be updated with its outcome", "lock", m.lockName(), "error", err)
	}
	if rec.LockLost {
		m.logger.Error("the failover lock was lost while the handlers ran", "lock", m.lockName())
	}
	ferr := &FailoverError{Record: rec, Err: errs.ErrorOrNil()}
	if ferr.Err != nil {
		m.logger.Error("failover done, but a handler failed", "event", "failover-finished", "error", ferr.Err)
	} else {
		m.logger.Warn("failover done; every handler succeeded", "event", "failover-finished", "lock", m.lockName())
	}
	snap := m.publishRecord(rec)
	m.setState(Notice{Kind: NoticeFailoverFinished, State: StateFailedOver, Record: snap, Err: ferr.Err})
	m.finish(snap, ferr)
	return snap, ferr, true
}

// endAttempt ends an attempt that could not take the lock, and releases
// the gate: the state goes back to what it was, or to what the loop
// published meanwhile, and observers hear why no handler ran.
func (m *Monitor) endAttempt(prev Status, err error) {
	n := Notice{Kind: NoticeLockUnavailable, State: prev.State, Reason: prev.Reason, Err: err}
	m.mu.Lock()
	if h := m.held; h != nil {
		n.State, n.Reason, n.Round = h.State, h.Reason, h.Round
		m.held = nil
	}
	m.mu.Unlock()
	m.setState(n)
	m.gate.end()
}

// updateRetry is the pause between attempts to write a failover's
// outcome.
const updateRetry = 500 * time.Millisecond

// updateRecord writes the failover's outcome, retrying within the lock
// timeout: a store briefly without a quorum (an etcd election) or a file
// system briefly full would otherwise leave the record failing-over,
// which reads as an interrupted failover. A record that is no longer
// this Monitor's (ErrLocked) is final.
func (m *Monitor) updateRecord(ctx context.Context, rec *Record) error {
	uctx, cancel := context.WithTimeout(ctx, m.lockTimeout)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		err := m.lock.Update(uctx, rec)
		if err == nil || errors.Is(err, ErrLocked) {
			return err
		}
		m.logger.Warn("writing the failover's outcome to the record failed; retrying", "lock", m.lockName(), "error", err)
		if !m.sleep(uctx, timer, updateRetry) {
			return err
		}
	}
}

// finish ends the failover for good with its result, releases the gate
// and stops the loop; the gate is held. The final state is published
// before, so that whoever waits on the gate sees it.
func (m *Monitor) finish(rec *Record, err error) {
	m.gate.finish(rec, err)
	m.mu.Lock()
	if m.loopCancel != nil {
		m.loopCancel()
	}
	m.mu.Unlock()
}

// publishRecord makes a copy of rec visible to Status and returns it.
func (m *Monitor) publishRecord(rec *Record) *Record {
	snap := *rec
	snap.Handlers = append([]HandlerOutcome(nil), rec.Handlers...)
	m.mu.Lock()
	m.record = &snap
	m.mu.Unlock()
	return &snap
}

func (m *Monitor) runHandler(ctx context.Context, h *handlerSpec, ev *Event) (HandlerOutcome, error) {
	out := HandlerOutcome{Name: h.name, Start: time.Now()}
	hctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	h.logger.Info("handler started", "event", "handler-started", "timeout", h.timeout)
	err := callHandler(withLogger(hctx, h.logger), h.handler, ev)
	out.Duration = time.Since(out.Start)
	if r, ok := h.handler.(Reporter); ok {
		out.Detail = r.Report()
	}
	if hctx.Err() == context.DeadlineExceeded {
		out.TimedOut = true
		err = fmt.Errorf("timed out after %v: %w", h.timeout, errOrDeadline(err))
	}
	if err != nil {
		out.Error = err.Error()
		h.logger.Error("handler failed", "event", "handler-finished", "error", err, "duration", out.Duration, "timed_out", out.TimedOut)
	} else {
		h.logger.Info("handler succeeded", "event", "handler-finished", "duration", out.Duration)
	}
	return out, err
}

func errOrDeadline(err error) error {
	if err == nil {
		return context.DeadlineExceeded
	}
	return err
}

func callHandler(ctx context.Context, h Handler, ev *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h.Handle(ctx, ev)
}

// failoverGate owns the failover. The promise "at most one failover,
// never two at once, and every later attempt gets the first one's
// result" is kept by its methods alone:
//
//   - begin takes the gate for an attempt, waiting (bounded by ctx) for
//     one in progress; once a failover has ended for good it returns
//     that result instead. From begin to end or finish, running is true
//     and bound is the attempt's deadline.
//   - end releases the gate after an attempt that did not end for good
//     (the lock could not be taken); finish releases it for good, with
//     the result.
//   - wait waits for an attempt in progress without taking the gate;
//     result returns the final result without waiting.
//
// Every attempt of one Monitor writes the same record ID, drawn once:
// a retry after a lost answer is the same failover, and a record with
// that ID is this Monitor's own (ours).
type failoverGate struct {
	sem  chan struct{} // one token, held by the running attempt
	done chan struct{} // closed once the failover ended for good
	rec  *Record       // the final result, written before done closes
	err  error

	// id is Record.ID for every attempt of this Monitor.
	id string
	// last is the last attempt; guarded by sem.
	last *failoverAttempt
	// until is the running attempt's deadline (unix ns), 0 when none.
	until atomic.Int64
}

func newFailoverGate() *failoverGate {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return &failoverGate{
		sem:  make(chan struct{}, 1),
		done: make(chan struct{}),
		id:   hex.EncodeToString(b[:]),
	}
}

// begin takes the gate for an attempt that may run for bound. held
// reports whether the caller now holds it and must call end or finish;
// if not, err is the final result (with rec), or ctx's error.
func (g *failoverGate) begin(ctx context.Context, bound time.Duration) (held bool, rec *Record, err error) {
	if rec, err := g.result(); err != nil {
		return false, rec, err
	}
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return false, nil, ctx.Err()
	}
	if rec, err := g.result(); err != nil {
		<-g.sem
		return false, rec, err
	}
	// An attempt whose caller gave up before it began never begins (a
	// /fail queued behind another attempt when fstaidd is told to stop:
	// a failover begun then could outlast the stop and be cut).
	if err := ctx.Err(); err != nil {
		<-g.sem
		return false, nil, err
	}
	g.until.Store(time.Now().Add(bound).UnixNano())
	return true, nil, nil
}

// attempt returns the attempt now beginning: a, or the last attempt
// when a is nil (a retry). The gate is held.
func (g *failoverGate) attempt(a *failoverAttempt) *failoverAttempt {
	if a != nil {
		g.last = a
	}
	return g.last
}

// end releases the gate after an attempt that did not end for good.
func (g *failoverGate) end() {
	g.until.Store(0)
	<-g.sem
}

// finish records the final result and releases the gate for good.
func (g *failoverGate) finish(rec *Record, err error) {
	g.rec, g.err = rec, err
	close(g.done)
	g.until.Store(0)
	<-g.sem
}

// wait waits until no attempt runs; false when ctx ended first.
func (g *failoverGate) wait(ctx context.Context) bool {
	select {
	case g.sem <- struct{}{}:
		<-g.sem
		return true
	case <-ctx.Done():
		return false
	}
}

// result returns the final result once the failover ended for good:
// err is nil before.
func (g *failoverGate) result() (*Record, error) {
	select {
	case <-g.done:
		return g.rec, g.err
	default:
		return nil, nil
	}
}

// running reports whether an attempt holds the gate.
func (g *failoverGate) running() bool { return g.until.Load() != 0 }

// ended reports whether the failover ended for good.
func (g *failoverGate) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// bound returns the running attempt's deadline (unix ns), 0 when none.
func (g *failoverGate) bound() int64 { return g.until.Load() }

// ours reports whether rec was written by this Monitor.
func (g *failoverGate) ours(rec *Record) bool { return rec != nil && rec.ID == g.id }
