package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-multierror"

	"github.com/fstaid/fstaid"
)

// FallbackLock is the shared etcd lock with a local lock (a file on this
// host) behind it, for operators who would rather fail over without
// etcd than not at all (`[etcd] on_unavailable = "local-lock"`).
//
// It trades the guarantee for availability. When etcd cannot be reached
// at failover time, the failover record is written to the local lock and
// the handlers run: with several monitors, each may then fail over once.
// What it keeps:
//   - this host never fails over twice: Load reports the local record
//     first, so a monitor that fell back is locked on its next start;
//   - start-up still needs etcd (Load and Probe fail while it is
//     unreachable, and fstaidd exits 70 for systemd to retry): a monitor
//     that cannot read the shared record cannot know whether another
//     monitor has already failed over;
//   - a reachable etcd decides: only an unreachable etcd (ErrUnreachable:
//     transport errors, no leader, timeouts) falls back, and only after a
//     linearizable read of the record failed the same way too. Any answer
//     from etcd — a refusal (permission denied, a refused credential,
//     the NOSPACE alarm: ErrRefused) or a record, even one read after
//     the creation failed — decides: a record means locked, a refusal
//     means no failover this time.
//
// k-of-n votes live in etcd, so they cannot fall back; the daemon
// refuses on_unavailable = "local-lock" with a quorum.
type FallbackLock struct {
	shared *Lock
	local  fstaid.Lock
	s      *Store

	mu   sync.Mutex
	held fstaid.Lock // the lock Acquire took, nil before
}

var (
	_ fstaid.Lock           = (*FallbackLock)(nil)
	_ fstaid.LockProber     = (*FallbackLock)(nil)
	_ fstaid.LockWatcher    = (*FallbackLock)(nil)
	_ fstaid.PersistentLock = (*FallbackLock)(nil)
	_ fstaid.LockRemover    = (*FallbackLock)(nil)
)

// LockWithFallback returns the Store's lock backed by local; see
// FallbackLock.
func (s *Store) LockWithFallback(local fstaid.Lock) *FallbackLock {
	return &FallbackLock{shared: s.Lock(), local: local, s: s}
}

// String describes both locks.
func (f *FallbackLock) String() string {
	return fmt.Sprintf("%s, falling back to %s", f.shared, f.local)
}

// Load returns the local record if there is one, else the shared one.
// An unreachable etcd is an error (unknown is not free).
func (f *FallbackLock) Load(ctx context.Context) (*fstaid.Record, error) {
	rec, err := f.local.Load(ctx)
	if err != nil || rec != nil {
		return rec, err
	}
	return f.shared.Load(ctx)
}

// Probe checks both locks: etcd must be reachable and writable, and the
// local lock usable, since a failover may need either.
func (f *FallbackLock) Probe(ctx context.Context) error {
	var errs *multierror.Error
	if err := f.shared.Probe(ctx); err != nil {
		errs = multierror.Append(errs, err)
	}
	if p, ok := f.local.(fstaid.LockProber); ok {
		if err := p.Probe(ctx); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("local fallback lock %s: %w", f.local, err))
		}
	}
	if errs == nil {
		return nil
	}
	if len(errs.Errors) == 1 {
		return errs.Errors[0]
	}
	return errs
}

// Acquire takes the shared lock. If etcd cannot be reached within the
// Store's timeout (so that the rest of ctx is left for the local lock),
// it reads the record (a linearizable read, within the Store's timeout
// too); only if that also gets no answer does it take the local lock
// instead, and say so loudly. Results:
//   - nil: the shared or (having fallen back) the local lock is held;
//   - a *fstaid.LockedError: a record exists in etcd (found by the
//     creation or by the read) or in the local lock;
//   - an error wrapping fstaid.ErrLockUnavailable and ErrRefused: etcd
//     answered, but refused; nothing falls back;
//   - an error wrapping fstaid.ErrLockUnavailable and ErrUnreachable:
//     the creation got no answer but the read did and found no record
//     (etcd came back: the next attempt decides there), or the local
//     lock failed too.
func (f *FallbackLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held != nil {
		return errors.New("etcd: lock already acquired by this Lock")
	}
	sctx, cancel := context.WithTimeout(ctx, f.s.timeout)
	err := f.shared.Acquire(sctx, rec)
	cancel()
	if err == nil {
		f.held = f.shared
		return nil
	}
	if !errors.Is(err, fstaid.ErrLockUnavailable) {
		return err // a record in etcd: locked
	}
	// No record came back: the creation was refused or got no answer.
	// Read the record (linearizable): a record there means locked, even
	// for a user that may not write; any answer means etcd is there and
	// decides (the creation may even have committed).
	sctx, cancel = context.WithTimeout(ctx, f.s.timeout)
	cur, rerr := f.shared.Load(sctx)
	cancel()
	switch {
	case rerr == nil && cur != nil:
		if rec.ID != "" && cur.ID == rec.ID {
			// Our own creation committed after all: the next attempt
			// (same ID) takes it in etcd.
			return fmt.Errorf("%w (the record read afterwards is this attempt's own: retry)", err)
		}
		return &fstaid.LockedError{Lock: f.shared.String(), Record: cur}
	case !errors.Is(err, ErrUnreachable):
		return err // etcd refused: it answered, so it decides
	case rerr == nil:
		return fmt.Errorf("%w (etcd answered a read afterwards: not falling back)", err)
	case !errors.Is(rerr, ErrUnreachable):
		return rerr
	}
	f.s.logger.Error("etcd unavailable at failover time: taking the local lock instead (on_unavailable = local-lock); another monitor may fail over too",
		"event", "lock-fallback", "local", fmt.Sprint(f.local), "error", err, "read_error", rerr)
	if lerr := f.local.Acquire(ctx, rec); lerr != nil {
		if errors.Is(lerr, fstaid.ErrLockNotDurable) {
			// Published, so taken: the Monitor runs the handlers and
			// updates this record.
			f.held = f.local
			return lerr
		}
		if errors.Is(lerr, fstaid.ErrLocked) {
			return lerr
		}
		return fmt.Errorf("%w; local fallback %s: %w", err, f.local, lerr)
	}
	f.held = f.local
	return nil
}

// Update updates the record in the lock Acquire took.
func (f *FallbackLock) Update(ctx context.Context, rec *fstaid.Record) error {
	f.mu.Lock()
	held := f.held
	f.mu.Unlock()
	if held == nil {
		return errors.New("etcd: Update before Acquire")
	}
	return held.Update(ctx, rec)
}

// Done is the held lock's: the holder lease for etcd, nil for a file.
func (f *FallbackLock) Done() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		return nil
	}
	return f.held.Done()
}

// Watch is the etcd lock's (fstaid.LockWatcher): another monitor's record
// in etcd stops this one, as with the plain etcd lock.
func (f *FallbackLock) Watch(ctx context.Context) <-chan *fstaid.Record {
	return f.shared.Watch(ctx)
}

// Persistent is the local lock's (fstaid.PersistentLock), nil when it
// cannot tell: a failover that fell back to a lock lost at boot would
// re-arm this monitor. The record in etcd does not depend on this host.
func (f *FallbackLock) Persistent() error {
	if p, ok := f.local.(fstaid.PersistentLock); ok {
		return p.Persistent()
	}
	return nil
}

// Remove removes rec from the lock Load shows it from (see
// fstaid.LockRemover): the local lock when it holds a record, else the
// shared one. A local lock that is not a fstaid.LockRemover cannot be
// cleared here.
func (f *FallbackLock) Remove(ctx context.Context, rec *fstaid.Record) error {
	local, err := f.local.Load(ctx)
	if err != nil {
		return err
	}
	if local == nil {
		return f.shared.Remove(ctx, rec)
	}
	r, ok := f.local.(fstaid.LockRemover)
	if !ok {
		return fmt.Errorf("etcd: the local fallback lock %s cannot remove its record", f.local)
	}
	return r.Remove(ctx, rec)
}
