package fstaid_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// problems returns Preflight's problems by property, failing t when the
// error is something else.
func problems(t *testing.T, err error) map[fstaid.LockProperty]error {
	t.Helper()
	if err == nil {
		return nil
	}
	var pe *fstaid.PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("Preflight error %v (%T) is not a *PreflightError", err, err)
	}
	return pe.Problems
}

// wantProblems checks that Preflight found exactly the properties want,
// each wrapping its cause (any error when the cause is nil).
func wantProblems(t *testing.T, what string, err error, want map[fstaid.LockProperty]error) {
	t.Helper()
	got := problems(t, err)
	for p, cause := range want {
		if cause == nil {
			if got[p] == nil {
				t.Errorf("%s: Preflight found no %s problem (all: %v)", what, p, err)
			}
			continue
		}
		if !errors.Is(got[p], cause) {
			t.Errorf("%s: Preflight's %s problem = %v, want one wrapping %v (all: %v)", what, p, got[p], cause, err)
		}
		if !errors.Is(err, cause) {
			t.Errorf("%s: errors.Is(Preflight error, %v) = false", what, cause)
		}
	}
	for p, e := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: Preflight reports %s: %v; want only %v", what, p, e, want)
		}
	}
}

// Each property Preflight names, found on a real directory; the durable
// one, which needs a failing directory fsync, is in
// lock_internal_test.go, and read-only, full and tmpfs mounts in
// lock_mount_test.go.
func TestPreflightFindsEachProblem(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir() // a temporary directory: never persistent
	isTemporary := func(t *testing.T, err error) {
		t.Helper()
		if !strings.Contains(problems(t, err)[fstaid.LockPersistent].Error(), "temporary directory") {
			t.Errorf("persistent problem = %v, want it to name the temporary directory", err)
		}
	}

	l := fstaid.NewFileLock(filepath.Join(dir, "free.lock"))
	rec, err := fstaid.Preflight(ctx, l)
	if rec != nil {
		t.Errorf("free lock: record %+v", rec)
	}
	wantProblems(t, "free lock in a temporary directory", err, map[fstaid.LockProperty]error{fstaid.LockPersistent: nil})
	isTemporary(t, err)

	// A record is reported, not a problem.
	held := filepath.Join(dir, "held.lock")
	os.WriteFile(held, nil, 0o644)
	rec, err = fstaid.Preflight(ctx, fstaid.NewFileLock(held))
	if rec == nil || !rec.Legacy {
		t.Errorf("held lock: record %+v, want the bare file's", rec)
	}
	wantProblems(t, "held lock", err, map[fstaid.LockProperty]error{fstaid.LockPersistent: nil})

	// Unreadable: the lock's path is a directory.
	unreadable := filepath.Join(dir, "dir.lock")
	os.Mkdir(unreadable, 0o755)
	rec, err = fstaid.Preflight(ctx, fstaid.NewFileLock(unreadable))
	wantProblems(t, "lock path is a directory", err, map[fstaid.LockProperty]error{fstaid.LockReadable: syscall.EISDIR, fstaid.LockPersistent: nil})
	if rec != nil {
		t.Errorf("unreadable lock: record %+v", rec)
	}

	// Not writable: the directory does not exist.
	missing := fstaid.NewFileLock(filepath.Join(dir, "no", "such", "fstaid.lock"))
	_, err = fstaid.Preflight(ctx, missing)
	wantProblems(t, "missing directory", err, map[fstaid.LockProperty]error{fstaid.LockWritable: syscall.ENOENT, fstaid.LockPersistent: nil})

	// Run refuses what Preflight calls unreadable or unwritable, wrapping
	// the cause, and runs no check.
	for what, lock := range map[string]fstaid.Lock{"unreadable": fstaid.NewFileLock(unreadable), "unwritable": missing} {
		s := &script{fn: pass}
		m := newMonitor(t, fstaid.WithPrimary(s, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(lock))
		err := m.Run(ctx)
		if !errors.Is(err, fstaid.ErrLockUnavailable) || errors.Is(err, fstaid.ErrLocked) {
			t.Errorf("Run on an %s lock = %v, want ErrLockUnavailable", what, err)
		}
		if len(s.startOffsets(time.Now())) != 0 {
			t.Errorf("Run on an %s lock ran the primary check", what)
		}
	}
}
