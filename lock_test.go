package fstaid_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

func TestFileLockRacingWritersOneWins(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "fstaid.8080.lock")
		const writers = 16
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Separate FileLock values: separate writers, one file.
				errs[i] = fstaid.NewFileLock(path).Acquire(t.Context(), &fstaid.Record{State: fstaid.RecordFailingOver, PID: i})
				if errs[i] == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1: %v", round, wins.Load(), errs)
		}
		rec, err := fstaid.NewFileLock(path).Load(t.Context())
		if err != nil || rec == nil {
			t.Fatalf("Load = %v, %v", rec, err)
		}
		for i, err := range errs {
			var le *fstaid.LockedError
			if err != nil && (!errors.As(err, &le) || le.Record.PID != rec.PID) {
				t.Errorf("writer %d: %v, want *LockedError with the winner's record (pid %d)", i, err, rec.PID)
			}
		}
		// No temporary files are left behind.
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
			t.Errorf("directory holds %d entries, want only the lock", len(ents))
		}
	}
}

func TestFileLockEmptyFileIsLocked(t *testing.T) {
	// The original fstaid locks by creating an empty file.
	path := filepath.Join(t.TempDir(), "fstaid.8080.lock")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := fstaid.NewFileLock(path)
	rec, err := l.Load(t.Context())
	if err != nil || rec == nil || !rec.Legacy {
		t.Fatalf("Load = %+v, %v; want a legacy record", rec, err)
	}
	if err := l.Acquire(t.Context(), &fstaid.Record{State: fstaid.RecordFailingOver}); !errors.Is(err, fstaid.ErrLocked) {
		t.Fatalf("Acquire over an empty file = %v, want ErrLocked", err)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Error("Acquire replaced the original's lock file")
	}
	p := &script{fn: pass}
	m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(l))
	err = m.Run(t.Context())
	if !errors.Is(err, fstaid.ErrLocked) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "original fstaid") {
		t.Errorf("Run = %v, want ErrLocked naming %s and the original's file", err, path)
	}
	if p.calls != 0 {
		t.Error("a check ran while locked")
	}
	// Garbage counts as locked too.
	os.WriteFile(path, []byte("{not json"), 0o644)
	if rec, _ := l.Load(t.Context()); rec == nil || !rec.Legacy {
		t.Errorf("garbage lock: %+v", rec)
	}
}

func TestFileLockUpdateOnlyByOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	owner, other := fstaid.NewFileLock(path), fstaid.NewFileLock(path)
	if err := other.Update(t.Context(), &fstaid.Record{State: fstaid.RecordDone}); err == nil {
		t.Error("Update without Acquire succeeded")
	}
	if err := owner.Acquire(t.Context(), &fstaid.Record{State: fstaid.RecordFailingOver, Host: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := owner.Update(t.Context(), &fstaid.Record{State: fstaid.RecordDone, Host: "a"}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := other.Load(t.Context()); rec.State != fstaid.RecordDone {
		t.Errorf("state %s after update", rec.State)
	}
}

func TestFileLockProbeAndPersistence(t *testing.T) {
	dir := t.TempDir()
	l := fstaid.NewFileLock(filepath.Join(dir, "lock"))
	if err := l.Probe(t.Context()); err != nil {
		t.Fatalf("Probe = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Probe left %d files", len(ents))
	}
	if err := l.Persistent(); err == nil {
		t.Errorf("a lock in %s (a temporary directory) was called persistent", dir)
	}
	if _, err := os.Stat("/dev/shm"); err == nil {
		if err := fstaid.NewFileLock("/dev/shm/fstaid-test.lock").Persistent(); err == nil || !strings.Contains(err.Error(), "tmpfs") {
			t.Errorf("/dev/shm: %v, want a tmpfs warning", err)
		}
	}
	missing := fstaid.NewFileLock(filepath.Join(dir, "no", "such", "dir", "lock"))
	m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(missing))
	if err := m.Run(t.Context()); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Errorf("Run with an unwritable lock dir = %v, want ErrLockUnavailable", err)
	}
	if os.Getuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		if err := fstaid.NewFileLock(filepath.Join(ro, "lock")).Probe(t.Context()); err == nil {
			t.Error("Probe of a read-only directory passed")
		}
	}
}

func TestRecordExistsBeforeHandlerRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fstaid.lock")
	var seen *fstaid.Record
	h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
		// Read with a separate lock value, as another process would.
		rec, err := fstaid.NewFileLock(path).Load(ctx)
		if err != nil {
			return err
		}
		seen = rec
		return nil
	})
	m := newMonitor(t, fstaid.WithPrimary(&script{fn: failFrom(2)}, time.Second), fstaid.WithInterval(10*time.Millisecond),
		fstaid.WithHandler("probe", h, time.Second), fstaid.WithLock(fstaid.NewFileLock(path)))
	err := m.Run(t.Context())
	var fe *fstaid.FailoverError
	if !errors.As(err, &fe) || fe.Err != nil {
		t.Fatalf("Run = %v", err)
	}
	if seen == nil || seen.State != fstaid.RecordFailingOver || seen.Event == nil || seen.Event.Reason != fstaid.ReasonAuto || seen.PID != os.Getpid() {
		t.Fatalf("inside the handler the record was %+v, want failing-over with the event", seen)
	}
	final, _ := fstaid.NewFileLock(path).Load(t.Context())
	if final.State != fstaid.RecordDone || len(final.Handlers) != 1 || final.Handlers[0].Name != "probe" || final.Finished.IsZero() {
		t.Errorf("final record %+v", final)
	}
	// A second monitor on the same lock refuses to start.
	m2 := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(fstaid.NewFileLock(path)))
	if err := m2.Run(t.Context()); !errors.Is(err, fstaid.ErrLocked) {
		t.Errorf("second Run = %v, want ErrLocked", err)
	}
}

func TestSIGKILLDuringHandlerLeavesLock(t *testing.T) {
	dir := t.TempDir()
	lockPath, marker := filepath.Join(dir, "fstaid.lock"), filepath.Join(dir, "started")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FSTAID_TEST_CHILD=fail-slowly", "FSTAID_TEST_LOCK="+lockPath, "FSTAID_TEST_MARKER="+marker)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited }) // also when waitFor gives up
	waitFor(t, 10*time.Second, "the child's handler starting", func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited

	h := &handlerLog{}
	p := &script{fn: fail}
	m := newMonitor(t, fstaid.WithPrimary(p, time.Second), fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(fstaid.NewFileLock(lockPath)))
	err := m.Run(t.Context())
	var le *fstaid.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Run after the crash = %v, want *LockedError", err)
	}
	if le.Record.State != fstaid.RecordFailingOver || le.Record.PID != cmd.Process.Pid || le.Record.Reason() != fstaid.ReasonManual {
		t.Errorf("record %+v: want the crashed child's failing-over record", le.Record)
	}
	if _, ferr := m.Fail(t.Context()); !errors.Is(ferr, fstaid.ErrLocked) {
		t.Errorf("Fail after the crash = %v, want ErrLocked", ferr)
	}
	if h.count() != 0 || p.calls != 0 {
		t.Errorf("after the crash: handler ran %d times, check %d times; want 0, 0", h.count(), p.calls)
	}
}

func TestAtMostOnceUnderConcurrency(t *testing.T) {
	// 100 Fail calls race the loop, which is itself failing over.
	for round := range 5 {
		var calls atomic.Int32
		h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			calls.Add(1)
			time.Sleep(20 * time.Millisecond)
			return nil
		})
		lock := fstaid.NewFileLock(filepath.Join(t.TempDir(), "lock"))
		m := newMonitor(t, fstaid.WithPrimary(&script{fn: fail}, time.Second), fstaid.WithStartupCheck(fstaid.StartupCheckOff),
			fstaid.WithInterval(time.Millisecond), fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(lock))
		start := make(chan struct{})
		var wg sync.WaitGroup
		var ok, locked atomic.Int32
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec, err := m.Fail(context.Background())
				switch {
				case err == nil && rec != nil:
					ok.Add(1)
				case errors.Is(err, fstaid.ErrLocked) && rec != nil && rec.State == fstaid.RecordDone:
					locked.Add(1)
				default:
					t.Errorf("Fail = %+v, %v", rec, err)
				}
			}()
		}
		done := runAsync(t.Context(), m)
		close(start)
		wg.Wait()
		if err := <-done; !errors.Is(err, fstaid.ErrFailedOver) {
			t.Fatalf("round %d: Run = %v", round, err)
		}
		if calls.Load() != 1 {
			t.Fatalf("round %d: handler ran %d times, want 1", round, calls.Load())
		}
		if ok.Load()+locked.Load() != 100 || ok.Load() > 1 {
			t.Errorf("round %d: %d Fail calls ran it, %d were told it was locked", round, ok.Load(), locked.Load())
		}
	}
}

func TestRunTwiceConcurrently(t *testing.T) {
	m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
	ctx, cancel := context.WithCancel(t.Context())
	done := runAsync(ctx, m)
	waitState(t, m, fstaid.StateArmed, 10*time.Second)
	if err := m.Run(ctx); !errors.Is(err, fstaid.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// After a clean stop, Run may be called again.
	ctx, cancel = context.WithCancel(t.Context())
	done = runAsync(ctx, m)
	waitState(t, m, fstaid.StateArmed, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Remove takes away the record shown and nothing else: a record updated
// since, replaced, or gone is refused with ErrRecordChanged and left.
func TestFileLockRemoveOnlyTheRecordShown(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fstaid.lock")
	owner := fstaid.NewFileLock(path)
	if err := owner.Acquire(ctx, &fstaid.Record{ID: "a1", State: fstaid.RecordFailingOver, Host: "a", Time: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	tool := fstaid.NewFileLock(path) // as fstaidd unlock builds it
	shown, err := tool.Load(ctx)
	if err != nil || shown == nil {
		t.Fatalf("Load = %+v, %v", shown, err)
	}
	// The owner finishes meanwhile: the record is no longer the one shown.
	if err := owner.Update(ctx, &fstaid.Record{ID: "a1", State: fstaid.RecordDone, Host: "a", Time: time.Unix(100, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := tool.Remove(ctx, shown); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Fatalf("Remove of an updated record = %v, want ErrRecordChanged", err)
	}
	if rec, _ := tool.Load(ctx); rec == nil || rec.State != fstaid.RecordDone {
		t.Fatalf("after a refused Remove the record is %+v, want the updated one", rec)
	}
	shown, _ = tool.Load(ctx)
	if err := tool.Remove(ctx, shown); err != nil {
		t.Fatalf("Remove of the record shown = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the lock file is still there after Remove: %v", err)
	}
	if err := tool.Remove(ctx, shown); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Errorf("Remove with no record left = %v, want ErrRecordChanged", err)
	}
	// Free again: a new failover takes it, and the old record shown does
	// not remove the new one.
	if err := fstaid.NewFileLock(path).Acquire(ctx, &fstaid.Record{ID: "b1", State: fstaid.RecordFailingOver, Host: "b", Time: time.Unix(200, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := tool.Remove(ctx, shown); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Errorf("Remove of an old record over a new one = %v, want ErrRecordChanged", err)
	}
	if rec, _ := tool.Load(ctx); rec == nil || rec.ID != "b1" {
		t.Errorf("the new record is %+v after a refused Remove", rec)
	}
	// The original's empty file is a Legacy record, removed the same way.
	legacy := filepath.Join(t.TempDir(), "fstaid.8080.lock")
	if err := os.WriteFile(legacy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ll := fstaid.NewFileLock(legacy)
	shown, _ = ll.Load(ctx)
	if err := ll.Remove(ctx, shown); err != nil {
		t.Errorf("Remove of a bare lock file = %v", err)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bare lock file is still there: %v", err)
	}
}

// Record.Equal compares records as a lock stores them: a Detail given as
// a struct equals the map Load decodes.
func TestRecordEqual(t *testing.T) {
	type moved struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	written := &fstaid.Record{State: fstaid.RecordDone, Time: at, Host: "a",
		Handlers: []fstaid.HandlerOutcome{{Name: "eip", Detail: moved{"i-1", "i-2"}}}}
	path := filepath.Join(t.TempDir(), "lock")
	if err := fstaid.NewFileLock(path).Acquire(t.Context(), written); err != nil {
		t.Fatal(err)
	}
	loaded, _ := fstaid.NewFileLock(path).Load(t.Context())
	if !loaded.Equal(written) || !written.Equal(loaded) {
		t.Errorf("a record and its stored form differ:\n%+v\n%+v", written, loaded)
	}
	other := *loaded
	other.Comment = "x"
	var none *fstaid.Record
	for _, tc := range []struct {
		a, b *fstaid.Record
		want bool
	}{{loaded, &other, false}, {loaded, none, false}, {none, none, true}} {
		if got := tc.a.Equal(tc.b); got != tc.want {
			t.Errorf("(%+v).Equal(%+v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
