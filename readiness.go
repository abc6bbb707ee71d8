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
// A run starts when it is due (interval start to start) and runs only in
// the gaps between rounds, never while a failover runs: each gap's
// context ends when the next round starts, so readiness never delays a
// round or a failover. A part cut short by the next round runs again in
// the next gap, and what finished is kept; a part that has not finished
// one interval after the run began is reported as ProblemUnverified
// (unknown is not ready). A failover (automatic or Fail) ends the gap in
// progress at once; the end of Run drops the run. The result is in
// Status().Readiness; a NoticeReadiness and one log line announce each
// change (ready to not ready and back, or another set of problems), not
// every run. Readiness never blocks a failover: a Monitor that is not
// ready still fails over (the problem may have healed), and the Record
// says what readiness last reported.
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

// errReadinessInterrupted ends a gap when a failover begins, Run ends or
// Reconfigure changes the parts.
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
	run    *readinessRun
	cancel context.CancelCauseFunc // ends the gap in progress
	done   chan struct{}           // closed when the last gap's goroutine returned; nil before the first
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
// options are valid, and Reconfigure with the new ones.
func (m *Monitor) initReadiness() {
	r := &m.ready
	if r.interval <= 0 {
		// Off (also after Reconfigure): no result, rather than an old
		// one that nothing renews.
		r.mu.Lock()
		r.last = nil
		r.mu.Unlock()
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
// (Preflight, read as checkLock reads it), each failure a ProblemLock.
// Not persistent (a lock that would not survive a reboot) was a warning
// at start-up; it does not stop a failover, so it is no problem here.
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
			add(fmt.Errorf("not %s: %w", p, err))
		}
	}
	return ps
}

// betweenRounds gives readiness the gap that begins now and ends at
// next, the next round's start: the parts of the run in progress not yet
// done run in it (a new run starts when one is due). They run in a
// goroutine of their own, on a context that ends at next: the loop does
// not wait for them.
func (m *Monitor) betweenRounds(ctx context.Context, next time.Time) {
	r := &m.ready
	if len(r.parts) == 0 {
		return
	}
	now := time.Now()
	if !now.Before(next) || m.gate.running() {
		return
	}
	r.mu.Lock()
	idle := r.run == nil && now.Before(r.due)
	prev := r.done
	r.mu.Unlock()
	if idle {
		return
	}
	if prev != nil && !waitGap(ctx, prev, next) {
		return // the last gap's parts have not returned (one ignores its context)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now = time.Now(); !now.Before(next) || m.gate.running() {
		return
	}
	if r.run == nil {
		if now.Before(r.due) {
			return
		}
		r.due = r.due.Add(r.interval)
		if r.due.Before(now) {
			r.due = now.Add(r.interval)
		}
		r.run = &readinessRun{start: now, found: make([][]Problem, len(r.parts)), done: make([]bool, len(r.parts))}
	}
	run := r.run
	var todo []int
	for i, done := range run.done {
		if !done {
			todo = append(todo, i)
		}
	}
	gctx, cancel := context.WithCancelCause(ctx)
	gctx, cancelDeadline := context.WithDeadlineCause(gctx, next, errNextRound)
	r.cancel = cancel
	done := make(chan struct{})
	r.done = done
	go func() {
		defer close(done)
		defer cancelDeadline()
		m.readinessGap(gctx, run, todo)
	}()
}

// readinessGrace bounds how long the loop waits, in a gap, for the last
// gap's parts to return once their context ended: they unwind at once,
// unless one ignores its context, and then this gap is skipped.
const readinessGrace = 100 * time.Millisecond

// waitGap waits for prev, the last gap's goroutine, to return: at most
// readinessGrace, and never past next. It reports whether it returned.
func waitGap(ctx context.Context, prev <-chan struct{}, next time.Time) bool {
	select {
	case <-prev:
		return true
	default:
	}
	t := time.NewTimer(min(readinessGrace, time.Until(next)))
	defer t.Stop()
	select {
	case <-prev:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// readinessRun is a run in progress: which parts are done, and what they
// found. The gap goroutine writes the parts it runs; betweenRounds reads
// done only once that goroutine has returned.
type readinessRun struct {
	start time.Time
	found [][]Problem
	done  []bool
}

// readinessGap runs the parts todo of run in parallel within one gap. A
// part that returns before the gap ends is done; the others run again in
// the next gap. Once every part is done the run is published; a run not
// done one readiness interval after it started is published with what
// did not finish as ProblemUnverified, so that a path that cannot be
// verified never shows as ready.
func (m *Monitor) readinessGap(ctx context.Context, run *readinessRun, todo []int) {
	r := &m.ready
	parts := r.parts
	var wg sync.WaitGroup
	for _, i := range todo {
		wg.Go(func() {
			ps := callReady(ctx, parts[i].check)
			// What a part says once its context ended is about the
			// context, not the failover path.
			if ctx.Err() == nil {
				run.found[i], run.done[i] = ps, true
			}
		})
	}
	wg.Wait()
	if errors.Is(context.Cause(ctx), errReadinessInterrupted) {
		return // a failover, or the end of Run: nothing to publish now
	}
	now := time.Now()
	complete := !slices.Contains(run.done, false)
	if !complete && now.Before(run.start.Add(r.interval)) {
		return // the next gap goes on with it
	}
	res := &Readiness{Checked: run.start, Duration: now.Sub(run.start)}
	for i, ps := range run.found {
		if !run.done[i] {
			ps = []Problem{{Kind: ProblemUnverified, Resource: parts[i].name,
				Message: fmt.Sprintf("did not finish in the gaps between rounds within one readiness interval (%v): readiness runs only between rounds", r.interval)}}
		}
		res.Problems = append(res.Problems, ps...)
	}
	res.Ready = len(res.Problems) == 0
	r.mu.Lock()
	if r.run == run {
		r.run = nil
	}
	r.mu.Unlock()
	m.publishReadiness(res)
}

// interruptReadiness ends the gap in progress at once: a failover calls
// it once it holds the gate (betweenRounds gives readiness no gap while
// it does). What the run's parts found so far is kept for the next gap.
func (m *Monitor) interruptReadiness() {
	r := &m.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel(errReadinessInterrupted)
	}
}

// stopReadiness ends the gap in progress, waits for its parts and drops
// the run: Run calls it before it returns, so that no part outlives it,
// and Reconfigure before it changes the parts.
func (m *Monitor) stopReadiness() {
	m.interruptReadiness()
	r := &m.ready
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
	r.mu.Lock()
	r.run = nil
	r.mu.Unlock()
}

// lastReadiness returns a copy of the last result, nil before the first
// run or without WithReadiness.
func (m *Monitor) lastReadiness() *Readiness {
	r := &m.ready
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.clone()
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
	if h.cmd.err != nil {
		return nil // New refused it
	}
	if _, err := exec.LookPath(h.cmd.path()); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return []Problem{{Kind: ProblemHandler, Resource: h.cmd.path(), Message: "not an executable file: " + err.Error()}}
	}
	return nil
}

var _ ReadinessCheck = (*ScriptHandler)(nil)

// readinessTransition derives ready and not-ready from a NoticeReadiness:
// one transition per change of Ready, none when only the problems
// change. The first result is one only when not ready: a monitor found
// ready as it starts has nothing to announce (armed said it started).
// The Monitor's state is not touched.
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
	d.ready = to
	if from == to || from == "" && r.Ready {
		return t, false
	}
	if from == "" {
		from = "unknown"
	}
	t.From, t.To, t.Reason, t.Record = from, to, r.Summary(), nil
	return t, true
}
