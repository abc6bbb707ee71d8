package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// memLock is an in-memory Lock for scheduling tests (synctest bubbles
// should not wait on disks).
type memLock struct {
	mu       sync.Mutex
	rec      *fstaid.Record
	first    fstaid.Record // as Acquire wrote it
	acquired int
	updates  int
	failWith error // Acquire fails with this when set
}

func (l *memLock) Load(context.Context) (*fstaid.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec == nil {
		return nil, nil
	}
	c := *l.rec
	return &c, nil
}

func (l *memLock) Acquire(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failWith != nil {
		return l.failWith
	}
	if l.rec != nil {
		c := *l.rec
		return &fstaid.LockedError{Lock: "mem", Record: &c}
	}
	c := *rec
	l.rec, l.first = &c, c
	l.acquired++
	return nil
}

func (l *memLock) Update(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	l.updates++
	return nil
}

func (l *memLock) Done() <-chan struct{} { return nil }

func (l *memLock) String() string { return "mem" }

func (l *memLock) record() *fstaid.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// handlerLog records handler calls.
type handlerLog struct {
	mu     sync.Mutex
	events []*fstaid.Event
	times  []time.Time
	err    error
	delay  time.Duration
}

func (h *handlerLog) Handle(ctx context.Context, ev *fstaid.Event) error {
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.times = append(h.times, time.Now())
	h.mu.Unlock()
	if h.delay > 0 {
		select {
		case <-time.After(h.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return h.err
}

func (h *handlerLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// script is a check whose outcome per call comes from a function of the
// call number (1-based); it records when each call started.
type script struct {
	mu     sync.Mutex
	calls  int
	starts []time.Time
	fn     func(ctx context.Context, call int) error
}

func (s *script) Check(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	return s.fn(ctx, n)
}

func (s *script) startOffsets(t0 time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, t := range s.starts {
		out = append(out, t.Sub(t0))
	}
	return out
}

func pass(context.Context, int) error { return nil }
func fail(context.Context, int) error { return errors.New("down") }

// blockUntilDone is a check that honours its context and nothing else.
func blockUntilDone(ctx context.Context, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

func sleepThen(d time.Duration, err error) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		select {
		case <-time.After(d):
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failFrom passes calls before n and fails from n on.
func failFrom(n int) func(context.Context, int) error {
	return func(_ context.Context, call int) error {
		if call >= n {
			return errors.New("down")
		}
		return nil
	}
}

func newMonitor(t *testing.T, opts ...fstaid.Option) *fstaid.Monitor {
	t.Helper()
	base := []fstaid.Option{fstaid.WithLogger(testLogger(t))}
	m, err := fstaid.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// testLogger logs through t, so that output shows only for failures.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// runAsync starts m.Run and returns a channel with its result.
func runAsync(ctx context.Context, m *fstaid.Monitor) <-chan error {
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return done
}

func secs(ds ...float64) []time.Duration {
	var out []time.Duration
	for _, d := range ds {
		out = append(out, time.Duration(d*float64(time.Second)))
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// sharedLock is a memLock that several monitors could share: like the
// etcd lock, it announces the record to Watch (fstaid.LockWatcher),
// whoever created it.
type sharedLock struct {
	memLock
	once    sync.Once
	created chan struct{} // closed once a record exists
}

func newSharedLock() *sharedLock { return &sharedLock{created: make(chan struct{})} }

func (l *sharedLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	err := l.memLock.Acquire(ctx, rec)
	if err == nil {
		l.once.Do(func() { close(l.created) })
	}
	return err
}

// takeAsOther creates the record as another monitor would.
func (l *sharedLock) takeAsOther(rec *fstaid.Record) {
	l.memLock.mu.Lock()
	l.memLock.rec = rec
	l.memLock.mu.Unlock()
	l.once.Do(func() { close(l.created) })
}

func (l *sharedLock) Watch(ctx context.Context) <-chan *fstaid.Record {
	ch := make(chan *fstaid.Record, 1)
	go func() {
		defer close(ch)
		select {
		case <-l.created:
			ch <- l.record()
		case <-ctx.Done():
		}
	}()
	return ch
}

// waitGone waits until pid no longer runs (a zombie counts as gone: it
// runs nothing and its reaper will collect it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// The state follows the parenthesised command name.
		if f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still runs", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("bad pid %q", f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitFor polls cond until it holds, failing t when d has passed first.
// Outside a synctest bubble it runs on real time; inside, on the
// bubble's.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitState waits until m is in state, failing t (with the state it is
// in) when d has passed first.
func waitState(t *testing.T, m *fstaid.Monitor, state fstaid.State, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := m.Status()
		if st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s (%s) after %v, want %s", st.State, st.Reason, d, state)
		}
		time.Sleep(time.Millisecond)
	}
}
