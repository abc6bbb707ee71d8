package fstaid

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// LockProperty names one thing Preflight checks of a lock.
type LockProperty string

const (
	// LockReadable: Load answers (a lock that cannot be read is not free:
	// unknown is not free).
	LockReadable LockProperty = "readable"
	// LockWritable: Acquire would work (LockProber: the directory takes a
	// file and publishes it exclusively, the store is reachable and the
	// credentials may write).
	LockWritable LockProperty = "writable"
	// LockDurable: what Acquire publishes survives a crash (LockProber:
	// the probe's directory fsync; its failure wraps ErrLockNotDurable).
	LockDurable LockProperty = "durable"
	// LockPersistent: the lock survives a reboot (PersistentLock).
	LockPersistent LockProperty = "persistent"
)

// lockProperties is the order Preflight checks and reports them in.
var lockProperties = []LockProperty{LockReadable, LockWritable, LockDurable, LockPersistent}

// PreflightError is what Preflight found wrong with a lock: one error per
// property the lock lacks. It unwraps to each of them, so errors.Is
// finds their causes (syscall.ENOSPC, ErrNoExclusivePublish, ...).
type PreflightError struct {
	// Lock describes the lock (its String, else its type).
	Lock string
	// Problems holds the cause of each property the lock lacks; a
	// property that is not there passed, or the lock cannot tell (no
	// Probe, no Persistent).
	Problems map[LockProperty]error
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fstaid: lock %s:", e.Lock)
	sep := " "
	for _, p := range lockProperties {
		if err, ok := e.Problems[p]; ok {
			fmt.Fprintf(&b, "%snot %s: %v", sep, p, err)
			sep = "; "
		}
	}
	return b.String()
}

// Unwrap returns each problem's cause, in the order of the properties.
func (e *PreflightError) Unwrap() []error {
	var errs []error
	for _, p := range lockProperties {
		if err, ok := e.Problems[p]; ok {
			errs = append(errs, err)
		}
	}
	return errs
}

// Preflight checks, without taking it, that l can do its job, and reads
// its record. Run makes exactly these checks at start-up, and `fstaidd
// check` shows them:
//
//   - readable: Load answers;
//   - writable: l's Probe passes, when l is a LockProber;
//   - durable: that Probe did not fail on making its file durable (an
//     error wrapping ErrLockNotDurable);
//   - persistent: l's Persistent returns nil, when l is a PersistentLock.
//
// It returns the record Load found (nil when none, or when Load failed)
// and nil, or a *PreflightError naming every property l lacks; each
// check runs whatever the others found. A record is not a problem here:
// the caller decides (Run refuses to start, unless the record is its
// own). Run refuses to start when l is not readable, writable or
// durable, and only warns when it is not persistent.
func Preflight(ctx context.Context, l Lock) (*Record, error) {
	problems := map[LockProperty]error{}
	rec, err := l.Load(ctx)
	if err != nil {
		problems[LockReadable] = err
		rec = nil
	}
	if p, ok := l.(LockProber); ok {
		if err := p.Probe(ctx); errors.Is(err, ErrLockNotDurable) {
			problems[LockDurable] = err
		} else if err != nil {
			problems[LockWritable] = err
		}
	}
	if p, ok := l.(PersistentLock); ok {
		if err := p.Persistent(); err != nil {
			problems[LockPersistent] = err
		}
	}
	if len(problems) == 0 {
		return rec, nil
	}
	return rec, &PreflightError{Lock: describeLock(l), Problems: problems}
}

// preflightProblems returns the problems of Preflight's error by
// property; nil (no problem) for a nil error.
func preflightProblems(err error) map[LockProperty]error {
	var pe *PreflightError
	if errors.As(err, &pe) {
		return pe.Problems
	}
	return nil
}

// describeLock names a lock in messages: its String, else its type.
func describeLock(l Lock) string {
	if s, ok := l.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", l)
}
