package fstaid

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrReconfigure: Reconfigure changed nothing, because an option that
// cannot change on a running Monitor differs, because Run is not running
// (or returned before the loop took the options), or because a failover
// has ended (the error then also wraps that failover's result:
// ErrFailedOver, ErrLocked).
var ErrReconfigure = errors.New("fstaid: reconfiguration refused")

// Reconfigure replaces what a running Monitor checks and does: the
// checks, the handlers, the interval, the attempts and their interval,
// the self-check and start-up policies, readiness (WithReadiness). opts are read as New reads them —
// from the defaults, so an option left out is reset (a secondary check
// not given is removed) — except that the lock, the lock timeout, the
// target, the logger and the observers stay the Monitor's: give them
// unchanged or not at all; any other value is refused, naming it. The
// result is validated whole, as New validates (ErrInvalidOption, every
// problem listed); nothing changes on an error.
//
// Run's loop applies the options between two rounds: a round in
// progress finishes with the old settings, and the next one starts one
// new interval after the last one started (or at once, if that has
// passed). A failover is never reconfigured: while one runs the loop
// waits for it, and once one has ended for good Reconfigure is refused.
// The state is kept: an armed Monitor stays armed, so a new primary
// check that fails fails over like any round (try it first: fstaidd
// check). An unarmed Monitor's next start-up round uses the new checks.
//
// Reconfigure returns once the loop applied the options (nil), or:
//   - an error wrapping ErrInvalidOption when the options are invalid;
//   - an error wrapping ErrReconfigure as above;
//   - ctx's error when ctx ended before the loop took the options
//     (nothing changed). Once taken, it waits for the answer, at most
//     until a running failover ends.
func (m *Monitor) Reconfigure(ctx context.Context, opts ...Option) error {
	next, err := m.reconfigured(opts)
	if err != nil {
		return err
	}
	if _, ferr := m.gate.result(); ferr != nil {
		return fmt.Errorf("%w: the monitor has failed over: %w", ErrReconfigure, ferr)
	}
	req := &reconfigRequest{next: next, done: make(chan error, 1)}
	accept, stopped := m.reconf.channels()
	if accept == nil {
		return fmt.Errorf("%w: the monitor is not running", ErrReconfigure)
	}
	select {
	case accept <- req:
	case <-stopped:
		if _, ferr := m.gate.result(); ferr != nil {
			return fmt.Errorf("%w: the monitor has failed over: %w", ErrReconfigure, ferr)
		}
		return fmt.Errorf("%w: the monitor stopped", ErrReconfigure)
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.done
}

// reconfigured builds, validates and returns the settings opts make; the
// Monitor returned holds settings only.
func (m *Monitor) reconfigured(opts []Option) (*Monitor, error) {
	c := &Monitor{
		interval:    DefaultInterval,
		maxAttempts: DefaultMaxAttempts,
		// What cannot change starts as it is, so that leaving it out
		// keeps it.
		lock:        m.lock,
		lockTimeout: m.lockTimeout,
		logger:      m.logger,
		target:      m.target,
		observers:   m.observers[:len(m.observers):len(m.observers)],
	}
	for _, o := range opts {
		o.apply(c)
	}
	var fixed []string
	if c.lock != m.lock {
		fixed = append(fixed, "the lock (WithLock)")
	}
	if c.lockTimeout != m.lockTimeout {
		fixed = append(fixed, "the lock timeout (WithLockTimeout)")
	}
	if c.target != m.target {
		fixed = append(fixed, "the target (WithTarget)")
	}
	if c.logger != m.logger {
		fixed = append(fixed, "the logger (WithLogger)")
	}
	if len(c.observers) != len(m.observers) {
		fixed = append(fixed, "the observers (WithObserver, WithNotifications)")
	}
	if len(fixed) > 0 {
		return nil, fmt.Errorf("%w: cannot change on a running monitor: %s", ErrReconfigure, strings.Join(fixed, ", "))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.setLoggers()
	return c, nil
}

// setLoggers gives each check and handler the Monitor's logger, with its
// name.
func (m *Monitor) setLoggers() {
	for _, c := range []*checkSpec{&m.primary, &m.secondary, &m.self} {
		if c.set() {
			c.logger = m.logger.With("check", c.name)
		}
	}
	for i := range m.handlers {
		m.handlers[i].logger = m.logger.With("handler", m.handlers[i].name)
	}
}

// reconfigRequest is one Reconfigure waiting for the loop.
type reconfigRequest struct {
	next *Monitor
	done chan error // buffered: the loop never waits on it
}

// reconfigSlot is where Reconfigure finds the running loop: open while
// Run's loop runs.
type reconfigSlot struct {
	mu      sync.Mutex
	accept  chan *reconfigRequest
	stopped chan struct{}
}

// open makes the loop reachable and returns the function that closes it
// again (Run defers it).
func (s *reconfigSlot) open() (closeSlot func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accept, s.stopped = make(chan *reconfigRequest), make(chan struct{})
	stopped := s.stopped
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		close(stopped)
		s.accept, s.stopped = nil, nil
	}
}

// channels returns the loop's channels, nil when Run's loop is not
// running.
func (s *reconfigSlot) channels() (chan<- *reconfigRequest, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accept, s.stopped
}

// receiver is the loop's end of the slot.
func (s *reconfigSlot) receiver() <-chan *reconfigRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accept
}

// waitRound waits until *next, the start of the next round, and
// applies any reconfiguration that arrives meanwhile, or is waiting when
// the round is already due: the new interval then counts from prev, the
// last round's start (when there was one). False when ctx ended first.
func (m *Monitor) waitRound(ctx context.Context, timer *time.Timer, prev time.Time, next *time.Time, cc *checkContexts) bool {
	accept := m.reconf.receiver()
	for {
		wait := time.Until(*next)
		var expired <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			expired = timer.C
		} else {
			// Due now: take a request already waiting, but do not wait
			// for one (rounds that overrun the interval must still let
			// a reconfiguration in).
			select {
			case req := <-accept:
				m.reconfigure(ctx, req, prev, next, cc)
				continue
			default:
				return ctx.Err() == nil
			}
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-expired:
			return true
		case req := <-accept:
			timer.Stop()
			m.reconfigure(ctx, req, prev, next, cc)
		}
	}
}

// reconfigure applies req between rounds, holding the failover gate so
// that no failover runs (or reads the handlers) meanwhile, and answers
// it. A failover that ended for good refuses it.
func (m *Monitor) reconfigure(ctx context.Context, req *reconfigRequest, prev time.Time, next *time.Time, cc *checkContexts) {
	held, _, err := m.gate.begin(ctx, m.lockTimeout)
	if !held {
		if errors.Is(err, ErrFailedOver) || errors.Is(err, ErrLocked) {
			err = fmt.Errorf("%w: the monitor has failed over: %w", ErrReconfigure, err)
		} else {
			err = fmt.Errorf("%w: the monitor stopped: %w", ErrReconfigure, err)
		}
		req.done <- err
		return
	}
	c := req.next
	// A readiness run reads the handlers and checks it was built with,
	// and must end before the next round, which may now start earlier.
	m.stopReadiness()
	m.settingsMu.Lock()
	m.primary, m.secondary, m.self = c.primary, c.secondary, c.self
	m.handlers = c.handlers
	m.interval, m.attemptInterval, m.maxAttempts = c.interval, c.attemptInterval, c.maxAttempts
	m.continueIfSelfFailed, m.startup = c.continueIfSelfFailed, c.startup
	m.ready.interval, m.ready.extra, m.ready.parts = c.ready.interval, c.ready.extra, nil
	m.initReadiness()
	m.settingsMu.Unlock()
	m.gate.end()

	*cc = m.checkContexts(ctx)
	if !prev.IsZero() {
		*next = m.nextStart(prev)
	}
	m.setDeadline(next.Add(m.RoundBound()))
	m.logger.Info("reconfigured: the next round uses the new settings", "event", "reconfigured",
		"interval", m.interval, "max_attempts", m.maxAttempts, "handlers", len(m.handlers), "next_round", *next)
	req.done <- nil
}

// checkContexts returns ctx with each configured check's logger in it.
func (m *Monitor) checkContexts(ctx context.Context) checkContexts {
	var cc checkContexts
	for _, c := range []struct {
		spec *checkSpec
		ctx  *context.Context
	}{{&m.self, &cc.self}, {&m.primary, &cc.primary}, {&m.secondary, &cc.secondary}} {
		if c.spec.set() {
			*c.ctx = withLogger(ctx, c.spec.logger)
		}
	}
	return cc
}

// currentInterval is the interval, for goroutines other than the loop.
func (m *Monitor) currentInterval() time.Duration {
	m.settingsMu.RLock()
	defer m.settingsMu.RUnlock()
	return m.interval
}
