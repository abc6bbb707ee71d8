package fstaid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// These tests swap the package's file system hooks (linkFile, syncDir),
// so they never run in parallel.

// failSyncDir makes every directory fsync fail with EIO until the test
// ends. No real file system here fails a directory fsync on demand (a
// dm-flakey or dm-error device needs device-mapper tables this kernel
// and testbed do not offer), so the hook stands in for the one step the
// test cannot make fail for real; link(2), the files and the directory
// are real.
func failSyncDir(t *testing.T) *atomic.Bool {
	t.Helper()
	var failing atomic.Bool
	failing.Store(true)
	orig := syncDir
	syncDir = func(dir string) error {
		if failing.Load() {
			return fmt.Errorf("fsync %s: %w", dir, syscall.EIO)
		}
		return orig(dir)
	}
	t.Cleanup(func() { syncDir = orig })
	return &failing
}

// refuseLinks makes link(2) fail with EPERM, as vfat answers, until the
// test ends. The kernel here has no vfat driver (and loads no modules), and
// none of the file systems it has refuses hard links while accepting
// renameat2(RENAME_NOREPLACE); with the hook, the fallback's renameat2
// calls run for real on the test's directory.
func refuseLinks(t *testing.T) {
	t.Helper()
	orig := linkFile
	linkFile = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	t.Cleanup(func() { linkFile = orig })
}

// Issue 13 item 4: once link(2) has published the record the lock is
// taken; a failing directory fsync must say so (ErrLockNotDurable), keep
// the lock owned and leave Update working, never jam it.
func TestFileLockDirFsyncFailsAfterPublish(t *testing.T) {
	failing := failSyncDir(t)
	path := filepath.Join(t.TempDir(), "fstaid.8080.lock")
	first := NewFileLock(path)
	err := first.Acquire(t.Context(), &Record{State: RecordFailingOver, Host: "a", PID: 1})
	if !errors.Is(err, ErrLockNotDurable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Acquire with a failing directory fsync = %v, want an error wrapping ErrLockNotDurable and EIO", err)
	}
	if errors.Is(err, ErrLocked) {
		t.Errorf("Acquire = %v: not durable must not read as locked by another", err)
	}
	rec, lerr := NewFileLock(path).Load(t.Context())
	if lerr != nil || rec == nil || rec.Legacy || rec.State != RecordFailingOver || rec.Host != "a" {
		t.Fatalf("the lock file holds %+v, %v; want the published record", rec, lerr)
	}
	var le *LockedError
	if err := NewFileLock(path).Acquire(t.Context(), &Record{State: RecordFailingOver, Host: "b"}); !errors.As(err, &le) || le.Record.Host != "a" {
		t.Errorf("a second writer's Acquire = %v, want *LockedError with the first record", err)
	}
	// Still failing: the update lands but says it is not durable.
	if err := first.Update(t.Context(), &Record{State: RecordFailingOver, Host: "a", Warnings: []string{"not durable"}}); !errors.Is(err, ErrLockNotDurable) {
		t.Errorf("Update with a failing directory fsync = %v, want ErrLockNotDurable", err)
	}
	failing.Store(false)
	if err := first.Update(t.Context(), &Record{State: RecordDone, Host: "a"}); err != nil {
		t.Fatalf("Update after a not-durable Acquire = %v, want nil", err)
	}
	if rec, _ := NewFileLock(path).Load(t.Context()); rec == nil || rec.State != RecordDone {
		t.Errorf("after Update the record is %+v, want done", rec)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the lock", len(ents))
	}
}

// Issue 13 item 5: where link(2) is refused, Probe finds
// renameat2(RENAME_NOREPLACE), and Acquire publishes with it, exclusively.
func TestFileLockFallsBackToRenameat2(t *testing.T) {
	refuseLinks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "fstaid.8080.lock")
	l := NewFileLock(path)
	if err := l.Probe(t.Context()); err != nil {
		t.Fatalf("Probe with links refused = %v, want renameat2 to work", err)
	}
	if l.publish != publishRename {
		t.Errorf("Probe chose %v, want %v", l.publish, publishRename)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Probe left %d files", len(ents))
	}

	// The original's empty file is a lock for renameat2 too.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(t.Context(), &Record{State: RecordFailingOver}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire over an empty file = %v, want ErrLocked", err)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Fatal("renameat2 replaced the original's lock file")
	}
	os.Remove(path)

	// Racing writers, none of them probed: each finds the fallback
	// itself; exactly one wins.
	for round := range 10 {
		path := filepath.Join(t.TempDir(), "fstaid.8080.lock")
		const writers = 16
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				errs[i] = NewFileLock(path).Acquire(t.Context(), &Record{State: RecordFailingOver, PID: i})
				if errs[i] == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1: %v", round, wins.Load(), errs)
		}
		for i, err := range errs {
			if err != nil && !errors.Is(err, ErrLocked) {
				t.Errorf("round %d writer %d: %v, want ErrLocked", round, i, err)
			}
		}
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
			t.Errorf("round %d: directory holds %d entries, want only the lock", round, len(ents))
		}
	}

	if err := l.Acquire(t.Context(), &Record{State: RecordFailingOver, Host: "a"}); err != nil {
		t.Fatalf("Acquire after a passing Probe = %v", err)
	}
	if err := l.Update(t.Context(), &Record{State: RecordDone, Host: "a"}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := NewFileLock(path).Load(t.Context()); rec == nil || rec.State != RecordDone || rec.Host != "a" {
		t.Errorf("record %+v after Update", rec)
	}
}

// A record carrying the attempt's own ID is the attempt's own (Record.ID).
func TestFileLockOwnIDIsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := NewFileLock(path).Acquire(t.Context(), &Record{ID: "n1", State: RecordFailingOver}); err != nil {
		t.Fatal(err)
	}
	if err := NewFileLock(path).Acquire(t.Context(), &Record{ID: "n2", State: RecordFailingOver}); !errors.Is(err, ErrLocked) {
		t.Errorf("Acquire with another ID = %v, want ErrLocked", err)
	}
	if err := NewFileLock(path).Acquire(t.Context(), &Record{State: RecordFailingOver}); !errors.Is(err, ErrLocked) {
		t.Errorf("Acquire with no ID = %v, want ErrLocked", err)
	}
	retry := NewFileLock(path)
	if err := retry.Acquire(t.Context(), &Record{ID: "n1", State: RecordFailingOver}); err != nil {
		t.Fatalf("Acquire with the record's own ID = %v, want nil", err)
	}
	if err := retry.Update(t.Context(), &Record{ID: "n1", State: RecordDone}); err != nil {
		t.Errorf("Update after taking over its own record = %v", err)
	}
}

// A directory whose fsync fails is writable but not durable: Preflight
// says which, and Run refuses it as unwritable (ErrLockUnavailable).
// Remove on it removes the record and says the removal may not last.
func TestPreflightNotDurable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fstaid.lock")
	if err := NewFileLock(path).Acquire(t.Context(), &Record{State: RecordDone, Host: "a"}); err != nil {
		t.Fatal(err)
	}
	failSyncDir(t)
	l := NewFileLock(path)
	rec, err := Preflight(t.Context(), l)
	var pe *PreflightError
	if !errors.As(err, &pe) || !errors.Is(pe.Problems[LockDurable], ErrLockNotDurable) || !errors.Is(pe.Problems[LockDurable], syscall.EIO) {
		t.Fatalf("Preflight with a failing directory fsync = %v, want a durable problem wrapping ErrLockNotDurable and EIO", err)
	}
	if pe.Problems[LockWritable] != nil || pe.Problems[LockReadable] != nil {
		t.Errorf("Preflight called the lock unwritable or unreadable too: %v", err)
	}
	if rec == nil || rec.Host != "a" {
		t.Errorf("Preflight's record = %+v", rec)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("the probe left files: %v", names)
	}
	if err := l.Remove(t.Context(), rec); !errors.Is(err, ErrLockNotDurable) || errors.Is(err, ErrRecordChanged) {
		t.Errorf("Remove with a failing directory fsync = %v, want ErrLockNotDurable", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left the record: %v", err)
	}
}
