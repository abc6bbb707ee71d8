package fstaid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// State notifications: keepalived's notify scripts, for fstaid. A
// Notifications queue turns a Monitor's notices into Transitions (with
// WithNotifications) and delivers each to a Notifier, typically a
// command (NotifyScript), one at a time, in order, each bounded by its
// own timeout, on a goroutine of its own: the loop and a failover never
// wait for a notification. Other producers (a readiness check, say)
// hand their own transitions to the same queue with Submit.

// TransitionKind says what a Transition announces.
type TransitionKind string

// The transitions WithNotifications derives from a Monitor's notices.
// Each is delivered once per change, not once per round: a self check
// that keeps failing is one self-check-failed, until a healthy round
// (armed again) or another state.
const (
	// TransitionArmed: monitoring; a failed round fails over. Also sent
	// when a healthy round ends a self-check-failed or lock-unavailable
	// episode (From and To are then both armed).
	TransitionArmed TransitionKind = "armed"
	// TransitionUnarmed: the start-up check failed; retrying every
	// interval (StartupCheckWait). Manual failover works.
	TransitionUnarmed TransitionKind = "unarmed"
	// TransitionSelfCheckFailed: the self check failed, at the start
	// of a round or just before a failover: the monitor may be the one
	// cut off. To is stopped when the monitor stops on it (ErrSelfCheck),
	// else the state stays.
	TransitionSelfCheckFailed TransitionKind = "self-check-failed"
	// TransitionLockUnavailable: a failover was due (or asked for) but
	// the lock could not be taken: no handler ran, and the monitor
	// keeps monitoring (fail closed). To is stopped when Run could not
	// read the lock at start-up.
	TransitionLockUnavailable TransitionKind = "lock-unavailable"
	// TransitionFailingOver: the lock is taken and the handlers run now.
	// Reason is auto or manual (with who asked).
	TransitionFailingOver TransitionKind = "failing-over"
	// TransitionFailedOver: the handlers returned; Record says how each
	// did. The monitor stops; a human re-arms it.
	TransitionFailedOver TransitionKind = "failed-over"
	// TransitionLocked: a failover record exists (at start-up, or another
	// monitor sharing the lock failed over); no handler ran here.
	TransitionLocked TransitionKind = "locked"
	// TransitionReady and TransitionNotReady: a readiness run
	// (WithReadiness) found the failover path ready again, or not ready
	// (Reason lists the problems); From and To are "unknown" (before the
	// first run), "ready" or "not-ready". Sent when readiness changes,
	// not when only the problems change, and not for a first result that
	// is ready.
	TransitionReady    TransitionKind = "ready"
	TransitionNotReady TransitionKind = "not-ready"
	// TransitionStopped: Run returned without a failover (told to stop,
	// or the start-up check failed with StartupCheckFail). After
	// failed-over or locked no stopped follows: those are final.
	TransitionStopped TransitionKind = "stopped"
)

// Transition is one change a notification announces.
type Transition struct {
	Kind TransitionKind
	// From and To are the states before and after: a Monitor's State
	// values for the transitions above; other producers use their own
	// (a readiness check: "ready", "not-ready").
	From, To string
	// Reason says why, in one line of text.
	Reason string
	// Target names the monitored target; Submit fills it in from the
	// observed Monitor when it is empty.
	Target string
	// Time is when it happened; Submit sets it when zero.
	Time time.Time
	// Record is the failover record, for failed-over, failing-over and
	// locked; nil otherwise.
	Record *Record
	// Dropped counts the transitions dropped, because the queue was
	// full, between the previous delivered one and this one. The queue
	// sets it.
	Dropped uint64
}

// NotifyType is the first argument of a notify command, keepalived's
// type of the instance that changed.
const NotifyType = "INSTANCE"

// Args returns a notify command's arguments, in keepalived's notify
// order: the type (NotifyType), the name (the target) and what happened
// (the kind), for example `INSTANCE db1 failed-over`.
func (t *Transition) Args() []string {
	return []string{NotifyType, t.Target, string(t.Kind)}
}

// Env returns the transition as FSTAID_* environment variables, named as
// a handler's (Event.Env): FSTAID_TRANSITION (the kind), FSTAID_OLD_STATE,
// FSTAID_STATE, FSTAID_REASON, FSTAID_TARGET, FSTAID_TIME (RFC 3339, UTC);
// with a record FSTAID_RECORD_STATE (failing-over, done, handler-failed)
// and, for a manual failover, FSTAID_REQUESTED_BY; FSTAID_DROPPED when
// transitions were dropped before this one.
func (t *Transition) Env() []string {
	env := []string{
		"FSTAID_TRANSITION=" + string(t.Kind),
		"FSTAID_OLD_STATE=" + t.From,
		"FSTAID_STATE=" + t.To,
		"FSTAID_REASON=" + oneLine(t.Reason),
		"FSTAID_TARGET=" + t.Target,
		"FSTAID_TIME=" + t.Time.UTC().Format(time.RFC3339Nano),
	}
	if t.Record != nil {
		env = append(env, "FSTAID_RECORD_STATE="+string(t.Record.State))
		if t.Record.Event != nil && t.Record.Event.RequestedBy != "" {
			env = append(env, "FSTAID_REQUESTED_BY="+t.Record.Event.RequestedBy)
		}
	}
	if t.Dropped > 0 {
		env = append(env, "FSTAID_DROPPED="+strconv.FormatUint(t.Dropped, 10))
	}
	return env
}

// A Notifier delivers one transition: runs a command, posts to a pager.
// Notifications calls it from one goroutine at a time, in order, with a
// context that carries the queue's timeout; it must return promptly once
// ctx is done. A panic is recovered and logged as its failure.
type Notifier interface {
	Notify(ctx context.Context, t *Transition) error
}

// NotifierFunc adapts an ordinary function to the Notifier interface.
type NotifierFunc func(ctx context.Context, t *Transition) error

// Notify calls f(ctx, t).
func (f NotifierFunc) Notify(ctx context.Context, t *Transition) error { return f(ctx, t) }

// ScriptNotifier runs a notify command as keepalived runs its notify
// script: the command line's words followed by Transition.Args
// (`INSTANCE <target> <kind>`), with Transition.Env added to the
// environment. Like a handler it runs in its own process group, killed
// with SIGKILL at the timeout and after it exits, and its output (both
// streams) is logged, bounded. A non-zero exit is a failure, logged; it
// changes nothing else.
type ScriptNotifier struct {
	cmd commandLine
}

var _ Notifier = (*ScriptNotifier)(nil)

// NotifyScript returns a Notifier that runs cmdline, split into words
// as handler commands are (Script; no shell). A command line that
// cannot be parsed is reported by NewNotifications.
func NotifyScript(cmdline string) *ScriptNotifier {
	return &ScriptNotifier{cmd: newCommandLine(cmdline)}
}

func (s *ScriptNotifier) validate() error { return s.cmd.err }

// Err returns why the command line cannot be run, nil when it can: what
// NewNotifications reports.
func (s *ScriptNotifier) Err() error { return s.cmd.err }

// Path returns the executable the command runs, as the command line
// names it, or "" when Err is not nil.
func (s *ScriptNotifier) Path() string { return s.cmd.path() }

// Notify runs the command with the transition's arguments and
// environment.
func (s *ScriptNotifier) Notify(ctx context.Context, t *Transition) error {
	return s.cmd.script(ctx, t.Args(), t.Env())
}

// String returns the command line.
func (s *ScriptNotifier) String() string { return s.cmd.String() }

// NotifyQueueLen bounds the transitions waiting for delivery. When a
// transition arrives at a full queue the oldest waiting one is dropped
// (counted, logged, and reported to the next delivered one as
// Transition.Dropped): the newest is the current state, which is what a
// pager must show, and the final ones (failed-over, stopped) come last.
// Nothing waits for room: a hung notify command must never delay the
// loop or a failover.
const NotifyQueueLen = 32

// DefaultNotifyTimeout is fstaidd's [notify] timeout when none is set.
const DefaultNotifyTimeout = 10 * time.Second

// ErrNotificationsClosed: Close was called; the queue takes nothing more.
var ErrNotificationsClosed = errors.New("fstaid: notifications closed")

// Notifications is a bounded queue of transitions delivered one at a
// time, in order, to a Notifier. Its methods are safe for concurrent use
// and never block on a delivery: a goroutine runs while transitions are
// waiting and exits once the queue is empty, so an idle queue holds no
// goroutine. Close ends it: it waits, within a bound, for what is queued.
//
// One Notifications serves one Monitor (WithNotifications), plus any
// other producer of the same process (Submit).
type Notifications struct {
	logger *slog.Logger
	// ctx is every delivery's parent; abort cancels it when Close runs
	// out of time, which kills a running command.
	ctx   context.Context
	abort context.CancelFunc

	mu       sync.Mutex // guards the fields below
	notifier Notifier
	timeout  time.Duration
	queue    []Transition
	// working: a goroutine delivers; idle closes when it exits.
	working bool
	idle    chan struct{}
	closed  bool
	// dropped counts every dropped transition; skipped those since the
	// last delivery began.
	dropped, skipped  uint64
	delivered, failed uint64
	// target is the observed Monitor's, once it published a notice.
	target string

	// derive is the observer's own: the Monitor calls it serially.
	derive deriver
}

// NotificationStats counts what a Notifications did.
type NotificationStats struct {
	// Delivered and Failed count deliveries by outcome; Dropped counts
	// transitions never delivered (the queue was full, or Close ran out
	// of time).
	Delivered, Failed, Dropped uint64
}

// NewNotifications returns a queue delivering to n, each delivery
// bounded by timeout (which must be positive). A nil n accepts and
// discards every transition, so that producers need no branches; set one
// later with SetNotifier. logger nil discards logs.
func NewNotifications(n Notifier, timeout time.Duration, logger *slog.Logger) (*Notifications, error) {
	if logger == nil {
		logger = discardLogger
	}
	ctx, abort := context.WithCancel(context.Background())
	q := &Notifications{logger: logger, ctx: ctx, abort: abort}
	if err := q.SetNotifier(n, timeout); err != nil {
		abort()
		return nil, err
	}
	return q, nil
}

// SetNotifier replaces the Notifier and the timeout for the deliveries
// that begin after it (a reloaded configuration); one running finishes
// with the old ones. nil n discards transitions from now on.
func (q *Notifications) SetNotifier(n Notifier, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("%w: notify timeout must be positive, got %v", ErrInvalidOption, timeout)
	}
	if v, ok := n.(validator); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("%w: notify command: %v", ErrInvalidOption, err)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.notifier, q.timeout = n, timeout
	return nil
}

// Submit queues t for delivery and returns at once. A zero Time becomes
// now; an empty Target becomes the target of the Monitor the queue
// observes (WithNotifications), once that has published a notice (Run
// has begun). Without a Notifier it does nothing.
// After Close, t is dropped and counted.
func (q *Notifications) Submit(t Transition) {
	if t.Time.IsZero() {
		t.Time = time.Now()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.Target == "" {
		t.Target = q.target
	}
	switch {
	case q.closed:
		q.dropped++
		q.logger.Warn("notification dropped: the queue is closed", "event", "notify-dropped", "transition", t.Kind, "error", ErrNotificationsClosed)
		return
	case q.notifier == nil:
		return
	}
	if len(q.queue) >= NotifyQueueLen {
		old := q.queue[0]
		q.queue = append(q.queue[:0], q.queue[1:]...)
		q.dropped++
		q.skipped++
		q.logger.Warn("notification dropped: the queue is full (the notify command is slow or hangs)", "event", "notify-dropped",
			"transition", old.Kind, "time", old.Time, "queue", NotifyQueueLen)
	}
	q.queue = append(q.queue, t)
	if !q.working {
		q.working = true
		q.idle = make(chan struct{})
		go q.work(q.idle)
	}
}

// work delivers until the queue is empty, then exits.
func (q *Notifications) work(idle chan struct{}) {
	defer close(idle)
	for {
		q.mu.Lock()
		if len(q.queue) == 0 || q.ctx.Err() != nil {
			q.working = false
			q.mu.Unlock()
			return
		}
		t := q.queue[0]
		q.queue[0] = Transition{} // let the record go
		q.queue = q.queue[1:]
		t.Dropped, q.skipped = q.skipped, 0
		n, timeout := q.notifier, q.timeout
		q.mu.Unlock()

		err := q.deliver(n, timeout, &t)
		q.mu.Lock()
		if err != nil {
			q.failed++
		} else {
			q.delivered++
		}
		q.mu.Unlock()
	}
}

// deliver runs one notification within timeout and logs how it went.
func (q *Notifications) deliver(n Notifier, timeout time.Duration, t *Transition) (err error) {
	if n == nil {
		return nil
	}
	logger := q.logger.With("transition", t.Kind)
	ctx, cancel := context.WithTimeout(q.ctx, timeout)
	defer cancel()
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("notifier panicked: %v", p)
			}
		}()
		err = n.Notify(withLogger(ctx, logger), t)
	}()
	d := time.Since(start)
	timedOut := ctx.Err() == context.DeadlineExceeded && q.ctx.Err() == nil
	switch {
	case timedOut:
		err = fmt.Errorf("timed out after %v: %w", timeout, errOrDeadline(err))
		logger.Warn("notification timed out", "event", "notify-finished", "error", err, "duration", d)
	case err != nil:
		logger.Warn("notification failed", "event", "notify-finished", "error", err, "duration", d)
	default:
		logger.Info("notified", "event", "notify-finished", "from", t.From, "to", t.To, "duration", d)
	}
	return err
}

// Stats returns what the queue did so far.
func (q *Notifications) Stats() NotificationStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return NotificationStats{Delivered: q.delivered, Failed: q.failed, Dropped: q.dropped}
}

// Close stops taking transitions and waits until the queued ones are
// delivered or ctx ends. Then the running delivery is cancelled (a
// command's process group is killed), the rest is dropped and counted,
// and Close returns an error wrapping ctx's once that delivery has
// returned: no goroutine of the queue is left when Close returns. Call
// it after Run returned, so that the final transition (stopped,
// failed-over) is delivered; bound ctx by the timeout, with room for
// one delivery ahead of it.
func (q *Notifications) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	working, idle := q.working, q.idle
	q.mu.Unlock()
	if !working {
		q.abort()
		return nil
	}
	select {
	case <-idle:
		q.abort()
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	lost := len(q.queue)
	q.dropped += uint64(lost)
	q.queue = nil
	q.mu.Unlock()
	q.abort()
	<-idle
	q.logger.Warn("notifications cut short on close", "event", "notify-dropped", "dropped", lost, "error", ctx.Err())
	return fmt.Errorf("fstaid: notifications: %d queued dropped and the running one cancelled: %w", lost, ctx.Err())
}

// WithNotifications sends q the Monitor's transitions (see
// TransitionKind), derived from its notices: as an observer, it only
// queues them (Submit), so it never delays the loop or a failover. q's
// transitions name this Monitor's target. Give q to one Monitor only,
// and Close it after Run returned.
func WithNotifications(q *Notifications) Option {
	return optionFunc(func(m *Monitor) {
		if q == nil {
			return
		}
		m.observers = append(m.observers, func(n Notice) {
			q.mu.Lock()
			q.target = m.target
			q.mu.Unlock()
			if t, ok := q.derive.transition(n); ok {
				t.Target = m.target
				q.Submit(t)
			}
		})
	})
}

// deriver turns notices into transitions, once per change. The Monitor
// calls its observers one at a time, so it needs no lock.
type deriver struct {
	state State // the last state a transition (or a notice) left
	// An episode of each lasts until the state changes or a round is
	// healthy.
	selfFailed, lockUnavailable bool
	// passed is the start-up round that passed, for armed's reason.
	passed uint64
	// ready is the last readiness a transition announced: "" (unknown),
	// "ready" or "not-ready" (readinessTransition).
	ready string
}

func (d *deriver) move(s State) {
	if s != d.state {
		d.state, d.selfFailed, d.lockUnavailable = s, false, false
	}
}

func (d *deriver) transition(n Notice) (Transition, bool) {
	if d.state == "" {
		d.state = StateNew
	}
	from := d.state
	t := Transition{Kind: "", From: string(from), To: string(n.State), Reason: n.Reason, Time: n.Time, Record: n.Record}
	switch n.Kind {
	case NoticeStarted:
		d.move(n.State)
		return t, false
	case NoticeUnarmed:
		t.Kind = TransitionUnarmed
	case NoticeArmed:
		t.Kind = TransitionArmed
		if t.Reason == "" {
			t.Reason = "armed without a start-up check"
			if d.passed > 0 {
				t.Reason = fmt.Sprintf("the start-up check passed (round %d)", d.passed)
			}
		}
	case NoticeLockTaken:
		t.Kind = TransitionFailingOver
		t.Reason = failoverReason(n.Record, n.Reason)
		d.move(n.State)
		return t, true
	case NoticeFailoverFinished:
		t.Kind = TransitionFailedOver
		t.Reason = "every handler succeeded"
		if n.Err != nil {
			t.Reason = "a handler failed: " + n.Err.Error()
		}
		d.move(n.State)
		return t, true
	case NoticeLocked:
		t.Kind = TransitionLocked
	case NoticeLockUnavailable:
		// The state is what it was before the attempt: the episode
		// survives it.
		if d.lockUnavailable {
			d.state = n.State
			return t, false
		}
		d.move(n.State)
		d.lockUnavailable = true
		t.Kind = TransitionLockUnavailable
		if n.Err != nil {
			t.Reason = n.Err.Error()
		}
		return t, true
	case NoticeRound:
		return d.round(n, t)
	case NoticeReadiness:
		return d.readinessTransition(n, t)
	case NoticeStopped:
		if n.State != StateStopped {
			return t, false // failed-over or locked: already said
		}
		t.Kind = TransitionStopped
		t.Reason = "told to stop"
		if n.Err != nil {
			t.Reason = n.Err.Error()
			if errors.Is(n.Err, ErrLockUnavailable) {
				t.Kind = TransitionLockUnavailable
			}
		}
	default:
		return t, false // checks, failover-started: no change yet
	}
	if from == n.State {
		return t, false
	}
	d.move(n.State)
	return t, true
}

// round derives from a round's end: a stop, a self check failing, or a
// healthy round ending an episode.
func (d *deriver) round(n Notice, t Transition) (Transition, bool) {
	r := n.Round
	if r == nil {
		return t, false
	}
	selfFailed := r.Verdict == VerdictSelfCheckFailed || r.Verdict == VerdictSelfFailedAfter
	if r.Verdict == VerdictStartupPassed {
		d.passed = r.Number
	}
	switch {
	case n.State == StateStopped:
		if d.state == StateStopped {
			return t, false
		}
		t.Kind, t.Reason = TransitionStopped, r.failures()
		if selfFailed {
			t.Kind = TransitionSelfCheckFailed
		}
		d.move(StateStopped)
		return t, true
	case n.State != StateArmed:
		return t, false
	case selfFailed && !d.selfFailed:
		d.move(StateArmed)
		d.selfFailed = true
		t.Kind, t.Reason = TransitionSelfCheckFailed, r.failures()
		return t, true
	case r.Verdict == VerdictHealthy && (d.selfFailed || d.lockUnavailable):
		d.selfFailed, d.lockUnavailable = false, false
		t.Kind, t.Reason = TransitionArmed, fmt.Sprintf("round %d healthy again", r.Number)
		return t, true
	}
	return t, false
}

// failoverReason says who started a failover, for failing-over.
func failoverReason(rec *Record, reason string) string {
	if rec == nil || rec.Event == nil {
		return reason
	}
	ev := rec.Event
	if ev.Reason == ReasonManual {
		if ev.RequestedBy != "" {
			return "manual, requested by " + ev.RequestedBy
		}
		return "manual"
	}
	if ev.Primary.Error != "" {
		return "auto: primary check: " + ev.Primary.Error
	}
	return fmt.Sprintf("auto: primary check exit status %d", ev.Primary.ExitStatus)
}
