package fstaid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Lock holds the failover record. Taking it is what makes a failover
// happen at most once: the Monitor takes it before any handler runs, and
// a Monitor refuses to start while a record exists. A human re-arms the
// monitor by removing the record (LockRemover).
//
// Implementations must make Acquire atomic across every writer that can
// race for the same lock (processes, hosts): exactly one Acquire succeeds.
// The Monitor calls the methods from one goroutine at a time.
type Lock interface {
	// Load returns the current record: (nil, nil) when there is none,
	// (rec, nil) when one exists, (nil, err) when the lock cannot be read
	// (the Monitor then refuses to start: unknown is not free).
	Load(ctx context.Context) (*Record, error)
	// Acquire creates the record only if none exists. If one exists it
	// returns a *LockedError (errors.Is(err, ErrLocked)) carrying the
	// existing record, and changes nothing.
	Acquire(ctx context.Context, rec *Record) error
	// Update replaces the record; only the owner (the caller whose
	// Acquire succeeded) may call it.
	Update(ctx context.Context, rec *Record) error
	// Done returns a channel closed when an acquired lock is lost (an
	// expired session, say), or nil when the lock cannot be lost.
	Done() <-chan struct{}
}

// LockProber is implemented by locks that can check, without taking the
// lock, that taking it would work (the directory is writable, the store
// reachable). The Monitor probes before monitoring starts and refuses to
// start when the probe fails.
type LockProber interface {
	Probe(ctx context.Context) error
}

// PersistentLock is implemented by locks that can tell whether they
// survive a reboot (FileLock). Persistent returns nil when the lock
// survives a reboot as far as can be told, or an error saying why not.
// Preflight reports it; the Monitor warns at start-up: a lock lost at
// boot silently re-arms the monitor.
type PersistentLock interface {
	Persistent() error
}

// LockRemover is implemented by locks whose record a human may remove
// to re-arm the monitors (fstaidd unlock). Remove removes the record
// only if the stored record is rec, the one shown to that human (as Load
// returned it; compared with Record.Equal); otherwise, also when there is
// no record any more, it changes nothing and returns an error wrapping
// ErrRecordChanged. A newer failover's record is thus never removed by
// mistake.
type LockRemover interface {
	Remove(ctx context.Context, rec *Record) error
}

// ErrRecordChanged reports that LockRemover.Remove found another record
// than the one shown, or none, and removed nothing.
var ErrRecordChanged = errors.New("fstaid: the failover record changed since it was shown")

// LockWatcher is implemented by locks that several monitors share (etcd).
// Watch returns a channel that receives the record, by whichever writer,
// once one exists (already, or created later), and is then closed; it is
// also closed when ctx ends. Sends must not block past ctx's end.
//
// A Monitor whose lock is a LockWatcher stops (Run returns a
// *LockedError) once another monitor has failed over, even when its own
// rounds never decide: one whose verdict the others outvote, say, would
// otherwise watch a target that has already been failed over, forever.
type LockWatcher interface {
	Watch(ctx context.Context) <-chan *Record
}

// RecordState is the progress of a failover, as its record tells it.
type RecordState string

const (
	// RecordFailingOver: the lock is taken and the handlers run (or the
	// process died while they ran).
	RecordFailingOver RecordState = "failing-over"
	// RecordDone: every handler succeeded.
	RecordDone RecordState = "done"
	// RecordHandlerFailed: the failover ran and at least one handler
	// failed.
	RecordHandlerFailed RecordState = "handler-failed"
)

// HandlerOutcome is one handler's part of a failover.
type HandlerOutcome struct {
	Name     string        `json:"name"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Error is empty when the handler succeeded.
	Error    string `json:"error,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	// Detail is what a handler implementing Reporter said it did (what
	// moved from where to where, each API call's duration).
	Detail any `json:"detail,omitempty"`
}

// Record is the failover record: written when the lock is taken, before
// any handler runs, and updated with each handler's outcome.
type Record struct {
	// ID identifies the failover attempt that wrote the record: a random
	// nonce the Monitor draws once per failover and keeps for every retry
	// of it. A Lock that finds a record with the ID it is asked to
	// create treats it as its own (an earlier creation whose reply was
	// lost) and succeeds; a Monitor that sees its own ID through a
	// LockWatcher knows the lock is its own and runs the handlers. Empty
	// in records written before IDs existed, and in Legacy records.
	ID    string      `json:"id,omitempty"`
	State RecordState `json:"state"`
	// Time is when the lock was taken.
	Time time.Time `json:"time"`
	Host string    `json:"host,omitempty"`
	PID  int       `json:"pid,omitempty"`
	// Event is what the handlers were given: reason, target, results.
	Event *Event `json:"event,omitempty"`
	// Comment is the operator's reason for a manual failover
	// (WithComment), empty when none was given.
	Comment string `json:"comment,omitempty"`
	// Handlers holds each handler's outcome, in order, once known.
	Handlers []HandlerOutcome `json:"handlers,omitempty"`
	// Finished is when the last handler returned.
	Finished time.Time `json:"finished,omitzero"`
	// LockLost reports that the lock was lost while the handlers ran.
	LockLost bool `json:"lock_lost,omitempty"`
	// Warnings lists what went wrong around the failover without
	// stopping it (a lock taken but not durable, say).
	Warnings []string `json:"warnings,omitempty"`
	// Readiness is what the last readiness run found before the
	// failover (WithReadiness); nil without one.
	Readiness *Readiness `json:"readiness,omitempty"`
	// Legacy reports a record that is not ours to read: an empty file
	// (what the original fstaid writes) or unreadable content. It still
	// counts as locked. Time is then the file's modification time.
	Legacy bool `json:"legacy,omitempty"`
}

// Equal reports whether r and o are the same record as a lock stores
// it: their JSON encodings are equal once each has been through the
// encoding a Lock's Load decodes (so a Detail that was a struct compares
// equal to the map Load returns for it). Two nil records are equal.
func (r *Record) Equal(o *Record) bool {
	if r == nil || o == nil {
		return r == o
	}
	a, aerr := r.canonical()
	b, berr := o.canonical()
	return aerr == nil && berr == nil && bytes.Equal(a, b)
}

// canonical is r's JSON as a Lock's Load would return it, encoded again.
func (r *Record) canonical() ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var back Record
	if err := json.Unmarshal(data, &back); err != nil {
		return nil, err
	}
	return json.Marshal(&back)
}

// Reason returns the record's failover reason, or "unknown".
func (r *Record) Reason() Reason {
	if r.Event == nil {
		return "unknown"
	}
	return r.Event.Reason
}

// ErrLockNotDurable is wrapped by an Acquire error when the record was
// published (the lock is taken: no other writer can take it) but a later
// step that makes it survive a crash failed, such as the directory fsync
// after link(2). The Monitor then runs the handlers anyway, logs the
// problem loudly and notes it in the record (Record.Warnings): a lock that
// is taken but not known durable must never leave the monitor armed and
// unable to fail over. FileLock's Probe wraps it when only its directory
// fsync failed (Preflight: not durable), and its Remove when the record
// is gone but a crash may bring it back.
var ErrLockNotDurable = errors.New("fstaid: lock taken but not durable")

// ErrLocked reports that a failover record exists: a failover happened
// (or began) and the monitor must not arm again until a human removes it.
var ErrLocked = errors.New("fstaid: locked by a failover record")

// LockedError is ErrLocked with the record and where it is.
type LockedError struct {
	// Lock describes the lock (a path, an etcd key).
	Lock string
	// Record is the existing record.
	Record *Record
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fstaid: locked by a failover record at %s", e.Lock)
	if r := e.Record; r != nil {
		if r.Legacy {
			fmt.Fprintf(&b, " (a bare lock file, as the original fstaid writes, modified %s)", r.Time.Format(time.RFC3339))
		} else {
			fmt.Fprintf(&b, " written %s by %s pid %d, reason %s, state %s", r.Time.Format(time.RFC3339), r.Host, r.PID, r.Reason(), r.State)
		}
	}
	b.WriteString("; after a failover the roles are swapped: update the configuration to watch the new active, then remove the record to re-arm")
	return b.String()
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// FileLock is a Lock kept in one file. Acquire writes the record to a
// temporary file in the same directory, fsyncs it, publishes it at the
// lock's path with a primitive that fails if anything is there (even the
// original's empty file; a plain rename would silently replace another
// writer's lock), removes the temporary name and fsyncs the directory.
// Update, by the owner only, renames a new fsynced file over its own
// record.
//
// The publish primitive is link(2). Where the directory refuses hard
// links (vfat, exFAT, some FUSE and SMB mounts answer EPERM, ENOTSUP or
// EXDEV) it is renameat2(2) with RENAME_NOREPLACE (Linux only). The lock
// remembers the first primitive that worked and uses only that one
// afterwards. Probe runs the same path against a probe name beside the
// lock (never the lock's path) and fails, wrapping ErrNoExclusivePublish,
// when the directory supports neither primitive: a directory that passes
// Probe is one where Acquire can take the lock.
//
// Once the record is published the lock is taken. If the directory fsync
// that follows fails, Acquire returns an error wrapping ErrLockNotDurable
// and the lock is still owned (Update works); Update wraps it too when
// its own directory fsync fails after the rename.
//
// The directory must survive a reboot: a lock lost with /tmp or a tmpfs
// silently re-arms the monitor (see Persistent).
type FileLock struct {
	path string

	mu    sync.Mutex
	owned bool
	// publish is the primitive found to work, publishUnknown until one
	// did.
	publish publishPrimitive
}

// ErrNoExclusivePublish is wrapped by Probe and Acquire errors when the
// lock's directory supports neither link(2) nor renameat2(2) with
// RENAME_NOREPLACE: nothing there can publish a record only if none
// exists, so the lock cannot be taken safely. The Monitor's start-up
// probe error wraps it (and ErrLockUnavailable): the monitor refuses to
// start instead of finding out at the first failover.
var ErrNoExclusivePublish = errors.New("fstaid: the lock directory cannot publish a file exclusively: neither link(2) nor renameat2(RENAME_NOREPLACE) works there")

// publishPrimitive is how a FileLock publishes a record only if nothing
// is at the path.
type publishPrimitive int

const (
	publishUnknown publishPrimitive = iota
	publishLink
	publishRename
)

func (p publishPrimitive) String() string {
	switch p {
	case publishLink:
		return "link(2)"
	case publishRename:
		return "renameat2(RENAME_NOREPLACE)"
	}
	return "unknown"
}

// Test hooks: the operations a test must be able to make fail where no
// real file system fails them on demand (see lock_internal_test.go).
var (
	// linkFile is link(2).
	linkFile = os.Link
	// syncDir fsyncs a directory.
	syncDir = syncDirFS
)

var (
	_ Lock           = (*FileLock)(nil)
	_ LockProber     = (*FileLock)(nil)
	_ PersistentLock = (*FileLock)(nil)
	_ LockRemover    = (*FileLock)(nil)
)

// NewFileLock returns a lock kept at path. There is no default path: the
// daemon keeps the original's <lockdir>/fstaid.<port>.lock.
func NewFileLock(path string) *FileLock { return &FileLock{path: path} }

// String returns the lock file's path.
func (l *FileLock) String() string { return l.path }

func (l *FileLock) validate() error {
	if l.path == "" {
		return errors.New("file lock: empty path")
	}
	return nil
}

// Load reads the record. An empty or unreadable file is a Legacy record:
// anything at the path counts as locked.
func (l *FileLock) Load(ctx context.Context) (*Record, error) {
	rec, _, err := l.read()
	return rec, err
}

// read reads the record and says which file it read: (nil, nil, nil)
// when there is none.
func (l *FileLock) read() (*Record, os.FileInfo, error) {
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fstaid: reading lock %s: %w", l.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("fstaid: reading lock %s: %w", l.path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("fstaid: reading lock %s: %w", l.path, err)
	}
	var rec Record
	if len(data) == 0 || json.Unmarshal(data, &rec) != nil || rec.State == "" {
		rec = Record{Legacy: true, Time: fi.ModTime()}
	}
	return &rec, fi, nil
}

// Remove removes the record only if it is rec (see LockRemover), and
// fsyncs the directory so that the removal survives a crash.
//
// Results: nil when rec was removed, durably; an error wrapping
// ErrRecordChanged when another record, or none, is there (nothing
// removed); an error wrapping ErrLockNotDurable when the record was
// removed but the directory fsync failed (a crash may bring it back:
// the safe side); any other error when it could not be read or removed.
//
// The record is read, compared, and then its name is removed only if it
// still names the file read: a record that replaced it in between (its
// owner's Update renames a new file over it) is kept. Only the moment
// between that last look and unlink(2) is not covered: the file system
// offers no removal conditional on content.
func (l *FileLock) Remove(ctx context.Context, rec *Record) error {
	if rec == nil {
		return errors.New("fstaid: Remove needs the record shown (Load's)")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, fi, err := l.read()
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("%w: %s holds no record now; nothing removed", ErrRecordChanged, l.path)
	}
	if !cur.Equal(rec) {
		return fmt.Errorf("%w: %s holds another record now (%s, state %s); nothing removed", ErrRecordChanged, l.path, cur.Time.Format(time.RFC3339), cur.State)
	}
	if now, err := os.Lstat(l.path); err != nil || !os.SameFile(fi, now) {
		return fmt.Errorf("%w: %s was replaced while it was read; nothing removed", ErrRecordChanged, l.path)
	}
	if err := os.Remove(l.path); err != nil {
		return fmt.Errorf("fstaid: removing lock %s: %w", l.path, err)
	}
	l.owned = false
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("%w: lock %s removed but a crash may bring the record back: %w", ErrLockNotDurable, l.path, err)
	}
	return nil
}

// Acquire publishes rec at the lock's path only if nothing is there.
//
// Results: nil when the lock is taken and durable; a *LockedError
// (ErrLocked) when a record exists, nothing changed; an error wrapping
// ErrLockNotDurable when the record is published (the lock is taken and
// owned, Update works) but the directory fsync failed; any other error
// when the lock was not taken (ErrNoExclusivePublish among them).
//
// A record with rec.ID (non-empty) already at the path is this attempt's
// own, published by an earlier call whose result was lost: Acquire then
// takes ownership and returns nil.
func (l *FileLock) Acquire(ctx context.Context, rec *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owned {
		return errors.New("fstaid: lock already acquired by this process")
	}
	tmp, err := l.writeTemp(rec)
	if err != nil {
		return err
	}
	if err := l.publishLocked(tmp, l.path); err != nil {
		// A failed publish moved nothing: the temporary name is ours.
		os.Remove(tmp)
		if errors.Is(err, ErrNoExclusivePublish) {
			return err
		}
		if errors.Is(err, fs.ErrExist) {
			existing, lerr := l.Load(ctx)
			if lerr != nil || existing == nil {
				existing = &Record{Legacy: true}
			}
			if rec.ID != "" && existing.ID == rec.ID {
				l.owned = true
				return l.syncPublished()
			}
			return &LockedError{Lock: l.path, Record: existing}
		}
		return fmt.Errorf("fstaid: publishing lock %s: %w", l.path, err)
	}
	l.owned = true
	l.dropTemp(tmp)
	return l.syncPublished()
}

// dropTemp removes the temporary name of a published record, before the
// directory fsync that then makes its removal durable too. After link(2)
// it is the record's second name; after renameat2 it is gone already and,
// free again, may be another writer's by now. l.mu must be held.
func (l *FileLock) dropTemp(tmp string) {
	if l.publish == publishLink {
		os.Remove(tmp)
	}
}

// syncPublished fsyncs the directory of a published record.
func (l *FileLock) syncPublished() error {
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("%w: lock %s is taken (published with %s) but a crash may lose it: %w", ErrLockNotDurable, l.path, l.publish, err)
	}
	return nil
}

// publishLocked publishes tmp at dst with the remembered primitive, or,
// before one is known, with link(2) and then renameat2(RENAME_NOREPLACE)
// if the directory refuses links, remembering the one that worked. An
// existing dst fails with an error wrapping fs.ErrExist. Neither
// primitive working is ErrNoExclusivePublish. l.mu must be held.
func (l *FileLock) publishLocked(tmp, dst string) error {
	switch l.publish {
	case publishLink:
		return linkFile(tmp, dst)
	case publishRename:
		return renameNoReplace(tmp, dst)
	}
	lerr := linkFile(tmp, dst)
	if lerr == nil {
		l.publish = publishLink
		return nil
	}
	if !linkRefused(lerr) {
		return lerr
	}
	rerr := renameNoReplace(tmp, dst)
	if rerr == nil {
		l.publish = publishRename
		return nil
	}
	if !renameRefused(rerr) {
		return rerr
	}
	return fmt.Errorf("%w: directory %s: link: %w; renameat2: %w", ErrNoExclusivePublish, filepath.Dir(dst), linkErrno(lerr), linkErrno(rerr))
}

// linkErrno is the cause inside an *os.LinkError, whose paths the caller
// already names.
func linkErrno(err error) error {
	if le, ok := err.(*os.LinkError); ok {
		return le.Err
	}
	return err
}

// linkRefused reports whether link(2) failed because the file system
// does not do hard links (vfat: EPERM), not because of the paths.
func linkRefused(err error) bool {
	for _, e := range []error{syscall.EPERM, syscall.ENOTSUP, syscall.EOPNOTSUPP, syscall.ENOSYS, syscall.EXDEV, errors.ErrUnsupported} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// renameRefused reports whether renameat2(RENAME_NOREPLACE) failed
// because the kernel or file system does not support it (EINVAL for an
// unsupported flag, as FUSE file systems without rename2 answer).
func renameRefused(err error) bool {
	for _, e := range []error{syscall.EINVAL, syscall.ENOTSUP, syscall.EOPNOTSUPP, syscall.ENOSYS, syscall.EPERM, errors.ErrUnsupported} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Update replaces the owner's record.
func (l *FileLock) Update(ctx context.Context, rec *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.owned {
		return errors.New("fstaid: updating a lock this process does not hold")
	}
	tmp, err := l.writeTemp(rec)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fstaid: updating lock %s: %w", l.path, err)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("%w: lock %s updated but a crash may bring back the previous record: %w", ErrLockNotDurable, l.path, err)
	}
	return nil
}

// Done returns nil: a file lock cannot be lost.
func (l *FileLock) Done() <-chan struct{} { return nil }

// Probe checks, without touching the lock file, that Acquire would work:
// it runs Acquire's path against a probe name beside the lock (write a
// temporary file, fsync it, publish it exclusively, remove both names,
// fsync the directory). It finds and remembers the publish primitive, and
// fails wrapping ErrNoExclusivePublish when the directory has none, and
// wrapping ErrLockNotDurable when only the directory fsync failed (a
// record published there might not survive a crash). Probe leaves no
// file behind, also when it fails (a full disk, say).
func (l *FileLock) Probe(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tmp, err := l.writeTemp(&Record{State: "probe"})
	if err != nil {
		return err
	}
	// A name no writer uses: CreateTemp's names end in digits.
	probe := tmp + ".probe"
	if err := l.publishLocked(tmp, probe); err != nil {
		os.Remove(tmp)
		if errors.Is(err, ErrNoExclusivePublish) {
			return err
		}
		return fmt.Errorf("fstaid: probing lock %s: publishing %s: %w", l.path, probe, err)
	}
	rerr := os.Remove(probe)
	l.dropTemp(tmp)
	if rerr != nil {
		return fmt.Errorf("fstaid: probing lock %s: %w", l.path, rerr)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("%w: probing lock %s: %w", ErrLockNotDurable, l.path, err)
	}
	return nil
}

// Persistent returns nil when the lock's directory survives a reboot as
// far as can be told, or an error saying why it does not (a tmpfs, the
// system's temporary directory).
func (l *FileLock) Persistent() error {
	dir, err := filepath.Abs(filepath.Dir(l.path))
	if err != nil {
		return err
	}
	if fsType, volatile := volatileFS(dir); volatile {
		return fmt.Errorf("lock directory %s is on %s, which does not survive a reboot: a lost lock silently re-arms the monitor", dir, fsType)
	}
	for _, tmp := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if dir == tmp || strings.HasPrefix(dir, tmp+"/") {
			return fmt.Errorf("lock directory %s is a temporary directory (cleaned at boot or by tmpfiles): a lost lock silently re-arms the monitor", dir)
		}
	}
	return nil
}

func (l *FileLock) writeTemp(rec *Record) (string, error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", fmt.Errorf("fstaid: encoding lock record: %w", err)
	}
	data = append(data, '\n')
	dir, base := filepath.Split(l.path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return "", fmt.Errorf("fstaid: lock directory %s: %w", dir, err)
	}
	name := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("fstaid: writing lock record in %s: %w", dir, err)
	}
	return name, nil
}

// syncDirFS fsyncs dir, making the names created and removed there
// durable.
func syncDirFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
