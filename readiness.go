package fstaid

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// A ReadinessCheck verifies, without changing anything, one part of what
// a failover needs: a permission, a resource, a store, a file. It returns
// every problem it finds; none means that part is ready. Ready must
// honour ctx: its deadline is the start of the next round, and a run cut
// short there reports what did not finish as ProblemUnverified.
//
// Ready may be called by several goroutines, never concurrently for one
// run of one check: each run calls every check once, all in parallel.
type ReadinessCheck interface {
	Ready(ctx context.Context) []Problem
}

// ReadinessFunc adapts an ordinary function to ReadinessCheck.
type ReadinessFunc func(ctx context.Context) []Problem

// Ready calls f(ctx).
func (f ReadinessFunc) Ready(ctx context.Context) []Problem { return f(ctx) }

// ProblemKind classifies a readiness Problem (fstaidd counts them by kind
// in fstaid_readiness_problems).
type ProblemKind string

const (
	// ProblemLock: the failover lock cannot be read or written durably,
	// or a failover record exists (the same pre-flight as start-up).
	ProblemLock ProblemKind = "lock"
	// ProblemHandler: a handler's own path is broken (its command is no
	// longer an executable file).
	ProblemHandler ProblemKind = "handler"
	// ProblemPermission: a call the failover would make is refused (an
	// IAM policy, an etcd role): Action names it.
	ProblemPermission ProblemKind = "permission"
	// ProblemResource: a resource the failover needs is missing or unfit
	// (an Elastic IP released, a standby stopped, a route deleted).
	ProblemResource ProblemKind = "resource"
	// ProblemStore: a shared store (etcd) cannot be read or refuses the
	// credentials.
	ProblemStore ProblemKind = "store"
	// ProblemQuorum: fewer live monitors than a quorum needs.
	ProblemQuorum ProblemKind = "quorum"
	// ProblemUnverified: a check could not say (it did not finish before
	// the next round, an API was throttled or unreachable). Unknown is not
	// ready.
	ProblemUnverified ProblemKind = "unverified"
)

// Problem is one reason a failover would not work now.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	// Resource names what the problem is about: a path, an allocation
	// ID, a route, an etcd key; for ProblemUnverified the check.
	Resource string `json:"resource"`
	// Action is the refused call (ProblemPermission), e.g.
	// AssociateAddress.
	Action string `json:"action,omitempty"`
	// Message says what is wrong and, where known, what to do.
	Message string `json:"message"`
}

func (p Problem) String() string {
	s := string(p.Kind) + " " + p.Resource
	if p.Action != "" {
		s += " (" + p.Action + ")"
	}
	return s + ": " + p.Message
}

// key identifies a problem across runs: its message may change from one
// run to the next (request IDs, attempt counts) without the problem
// changing.
func (p Problem) key() string { return string(p.Kind) + "\x00" + p.Resource + "\x00" + p.Action }

// Readiness is what the last readiness run found (WithReadiness).
type Readiness struct {
	// Ready reports that the run found no problem.
	Ready    bool      `json:"ready"`
	Problems []Problem `json:"problems,omitempty"`
	// Checked is when the run started, Duration how long it took.
	Checked  time.Time     `json:"checked"`
	Duration time.Duration `json:"duration_ns"`
}

// Summary is "ready", or "not-ready: " and the problems, one line.
func (r *Readiness) Summary() string {
	if r.Ready {
		return "ready"
	}
	s := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		s[i] = p.String()
	}
	return "not-ready: " + oneLine(strings.Join(s, "; "))
}

// sameAs reports whether r and o say the same: both ready, or the same
// problems (by kind, resource and action).
func (r *Readiness) sameAs(o *Readiness) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Ready == o.Ready && slices.Equal(problemKeys(r.Problems), problemKeys(o.Problems))
}

func problemKeys(ps []Problem) []string {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.key()
	}
	slices.Sort(keys)
	return keys
}

func (r *Readiness) clone() *Readiness {
	if r == nil {
		return nil
	}
	c := *r
	c.Problems = slices.Clone(r.Problems)
	return &c
}

// WithReadiness re-verifies the failover path every interval while the
// Monitor is armed, so that a path that rotted (a permission revoked, a
// standby stopped, a handler deleted, the lock directory remounted
// read-only) is known before the target dies. Each run checks, all in
// parallel:
//
//   - the lock, with Run's start-up pre-flight (Preflight: readable, no
//     record, writable and durable; not persistent is only a warning);
//   - every handler and check that implements ReadinessCheck
//     (ScriptHandler: the command is still an executable file;
//     contrib/aws's handlers: DryRun of each call and their resources;
//     contrib/etcd's quorum: enough live monitors);
//   - checks, in the order given.
//
// A run starts only between rounds, at the first gap after it is due
// (interval start to start), never while a failover runs, and its
// context ends when the next round starts: a run never delays a round or
// a failover, and a part cut short by the next round is reported as
// ProblemUnverified. A failover (automatic or Fail) cancels a run in
// progress; so does the end of Run. The result is in Status().Readiness;
// a NoticeReadiness and one log line announce each change (ready to not
// ready and back, or another set of problems), not every run. Readiness
// never blocks a failover: a Monitor that is not ready still fails over
// (the problem may have healed), and the Record says what readiness last
// reported.
//
// Default off; 0 turns it off, a negative interval is an error.
func WithReadiness(interval time.Duration, checks ...ReadinessCheck) Option {
	return optionFunc(func(m *Monitor) {
		m.ready.interval = interval
		m.ready.extra = append(m.ready.extra, checks...)
	})
}

// errNextRound ends a readiness run's context when the next round starts.
var errNextRound = errors.New("fstaid: readiness run cut short: the next round started")

// errReadinessInterrupted ends a run that a failover or the end of Run
// made pointless: its result is dropped.
var errReadinessInterrupted = errors.New("fstaid: readiness run interrupted")

// readinessPart is one check of a run, with the name its
// ProblemUnverified carries.
type readinessPart struct {
	name  string
	check ReadinessCheck
}

// readiness schedules the runs and keeps the last result.
type readiness struct {
	interval time.Duration
	extra    []ReadinessCheck
	parts    []readinessPart // built by New

	mu     sync.Mutex // guards the fields below
	due    time.Time  // when the next run may start; zero: at the first gap
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the last run's goroutine returned; nil before the first
	last   *Readiness
}

func (r *readiness) validate(bad func(string, ...any)) {
	if r.interval < 0 {
		bad("readiness interval must not be negative, got %v", r.interval)
	}
	for i, c := range r.extra {
		if c == nil {
			bad("readiness check %d is nil", i+1)
		}
	}
}

// initReadiness lists the parts a run checks; New calls it once the
// options are valid.
func (m *Monitor) initReadiness() {
	r := &m.ready
	if r.interval <= 0 {
		return
	}
	r.parts = append(r.parts, readinessPart{"lock " + m.lockName(), ReadinessFunc(m.lockReady)})
	for _, h := range m.handlers {
		if c, ok := h.handler.(ReadinessCheck); ok {
			r.parts = append(r.parts, readinessPart{"handler " + h.name, c})
		}
	}
	for _, c := range []*checkSpec{&m.self, &m.primary, &m.secondary} {
		if rc, ok := c.check.(ReadinessCheck); ok && c.set() {
			r.parts = append(r.parts, readinessPart{c.name + " check", rc})
		}
	}
	for i, c := range r.extra {
		name := fmt.Sprintf("readiness check %d", i+1)
		if s, ok := c.(fmt.Stringer); ok {
			name = s.String()
		}
		r.parts = append(r.parts, readinessPart{name, c})
	}
}

// lockReady is the lock's part of a run: the start-up pre-flight
// (Preflight, read as checkLock reads it), each failure a ProblemLock. Its warnings (a lock that would not survive a
// reboot) were logged at start-up; they do not stop a failover, so they
// are not problems here.
func (m *Monitor) lockReady(ctx context.Context) []Problem {
	ctx, cancel := context.WithTimeout(ctx, m.lockTimeout)
	defer cancel()
	var ps []Problem
	add := func(err error) {
		ps = append(ps, Problem{Kind: ProblemLock, Resource: m.lockName(), Message: err.Error()})
	}
	rec, err := Preflight(ctx, m.lock)
	problems := preflightProblems(err)
	if err := problems[LockReadable]; err != nil {
		add(fmt.Errorf("cannot read the failover record: %w", err))
	} else if rec != nil {
		add(&LockedError{Lock: m.lockName(), Record: rec})
	}
	for _, p := range []LockProperty{LockWritable, LockDurable} {
		if err := problems[p]; err != nil {
			add(fmt.Errorf("not writable: %w", err))
		}
	}
	return ps
}

// betweenRounds starts a readiness run if one is due; the loop calls it
// between rounds, with next the next round's start, which ends the run.
// The run goes on in its own goroutine: the loop does not wait for it.
func (m *Monitor) betweenRounds(ctx context.Context, next time.Time) {
	r := &m.ready
	if len(r.parts) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	switch {
	case now.Before(r.due), !now.Before(next), m.gate.running():
		return
	case r.done != nil:
		select {
		case <-r.done:
		default:
			return // the last run has not returned (a check ignoring its context)
		}
	}
	r.due = r.due.Add(r.interval)
	if r.due.Before(now) {
		r.due = now.Add(r.interval)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	rctx, cancelDeadline := context.WithDeadlineCause(rctx, next, errNextRound)
	r.cancel = cancel
	done := make(chan struct{})
	r.done = done
	go func() {
		defer close(done)
		defer cancelDeadline()
		m.readinessRun(rctx, now)
	}()
}

// interruptReadiness cancels a run in progress; its result is dropped. A
// failover calls it once it holds the gate (betweenRounds starts none
// while it does).
func (m *Monitor) interruptReadiness() {
	r := &m.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(errReadinessInterrupted)
	}
}

// stopReadiness cancels a run in progress and waits for it: Run calls it
// before it returns, so that no run outlives it.
func (m *Monitor) stopReadiness() {
	m.interruptReadiness()
	r := &m.ready
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// lastReadiness returns a copy of the last result, nil before the first
// run or without WithReadiness.
func (m *Monitor) lastReadiness() *Readiness {
	r := &m.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.clone()
}

// readinessRun runs every part in parallel and publishes the result,
// unless a failover or the end of Run interrupted it.
func (m *Monitor) readinessRun(ctx context.Context, start time.Time) {
	parts := m.ready.parts
	found := make([][]Problem, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			ps := callReady(ctx, p.check)
			if ctx.Err() != nil {
				// What a part says once its context ended is about
				// the context, not the failover path.
				ps = []Problem{{Kind: ProblemUnverified, Resource: p.name,
					Message: "did not finish before the next round started; readiness runs only between rounds"}}
			}
			found[i] = ps
		})
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errNextRound) {
		return
	}
	res := &Readiness{Ready: true, Checked: start, Duration: time.Since(start)}
	for _, ps := range found {
		res.Problems = append(res.Problems, ps...)
	}
	res.Ready = len(res.Problems) == 0
	m.publishReadiness(res)
}

func callReady(ctx context.Context, c ReadinessCheck) (ps []Problem) {
	defer func() {
		if p := recover(); p != nil {
			ps = []Problem{{Kind: ProblemUnverified, Resource: fmt.Sprintf("%T", c), Message: fmt.Sprintf("readiness check panicked: %v", p)}}
		}
	}()
	return c.Ready(ctx)
}

// publishReadiness keeps res and, when it says something else than the
// last result, logs it loudly and tells the observers.
func (m *Monitor) publishReadiness(res *Readiness) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	r := &m.ready
	r.mu.Lock()
	prev := r.last
	r.last = res
	r.mu.Unlock()
	if res.sameAs(prev) {
		return
	}
	problems := make([]string, len(res.Problems))
	for i, p := range res.Problems {
		problems[i] = p.String()
	}
	switch {
	case !res.Ready:
		m.logger.Error("FAILOVER PATH NOT READY: a failover now would not work as configured; fix these before the target dies",
			"event", "readiness", "ready", false, "problems", problems)
	case prev == nil:
		m.logger.Info("failover path ready", "event", "readiness", "ready", true, "duration", res.Duration)
	default:
		m.logger.Warn("failover path ready again", "event", "readiness", "ready", true, "duration", res.Duration)
	}
	m.notifyLocked(Notice{Kind: NoticeReadiness, State: m.currentState(), Readiness: res.clone()})
}

// Ready checks that the handler's command is still an executable file
// (looked up in PATH when it has no slash, as it will be run): a deploy
// that deleted the script, or lost its mode bits, is found before a
// failover needs it.
func (h *ScriptHandler) Ready(ctx context.Context) []Problem {
	if h.err != nil || len(h.args) == 0 {
		return nil // New refused it
	}
	if _, err := exec.LookPath(h.args[0]); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return []Problem{{Kind: ProblemHandler, Resource: h.args[0], Message: "not an executable file: " + err.Error()}}
	}
	return nil
}

var _ ReadinessCheck = (*ScriptHandler)(nil)

// readinessTransition derives ready and not-ready from a NoticeReadiness:
// one transition per change of Ready (the first result included, from
// "unknown"), none when only the problems change. The Monitor's state
// is not touched.
func (d *deriver) readinessTransition(n Notice, t Transition) (Transition, bool) {
	r := n.Readiness
	if r == nil {
		return t, false
	}
	to := "not-ready"
	t.Kind = TransitionNotReady
	if r.Ready {
		to, t.Kind = "ready", TransitionReady
	}
	from := d.ready
	if from == to {
		return t, false
	}
	if from == "" {
		from = "unknown"
	}
	d.ready = to
	t.From, t.To, t.Reason, t.Record = from, to, r.Summary(), nil
	return t, true
}
