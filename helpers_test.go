package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
