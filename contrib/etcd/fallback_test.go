package etcd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// on_unavailable = "local-lock": an armed monitor whose etcd goes away
// fails over with the file lock, once, and is locked by that file on its
// next start, etcd or not.
func TestFallbackLockFailsOverWithoutEtcd(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/fallback", "a", endpoints(srv), WithTimeout(500*time.Millisecond))
	local := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	f := s.LockWithFallback(local)
	ctx := ctxTimeout(t, 60*time.Second)
	if err := f.Probe(ctx); err != nil {
		t.Fatalf("Probe with etcd up: %v", err)
	}

	var runs atomic.Int32
	var failing atomic.Bool
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error {
			if failing.Load() {
				return errors.New("target down")
			}
			return nil
		}), time.Second),
		fstaid.WithMaxAttempts(1),
		fstaid.WithInterval(50*time.Millisecond),
		fstaid.WithHandler("count", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error {
			runs.Add(1)
			return nil
		}), time.Second),
		fstaid.WithLock(f),
		fstaid.WithLockTimeout(5*time.Second),
		fstaid.WithLogger(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() { result <- m.Run(ctx) }()
	eventually(t, 10*time.Second, "armed", func() bool { return m.Status().State == fstaid.StateArmed })

	srv.stop()
	failing.Store(true)
	select {
	case err := <-result:
		if !errors.Is(err, fstaid.ErrFailedOver) || errors.Is(err, fstaid.ErrHandlerFailed) {
			t.Fatalf("Run = %v, want a clean failover through the local lock", err)
		}
	case <-ctx.Done():
		t.Fatal("no failover with etcd down and on_unavailable = local-lock")
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if !f.Fallen() {
		t.Error("Fallen() = false after a failover with etcd down")
	}
	rec, err := local.Load(ctx)
	if err != nil || rec == nil || rec.State != fstaid.RecordDone {
		t.Fatalf("local record = %+v, %v; want a done record", rec, err)
	}

	// The next start is locked by the local record, before etcd is asked.
	again := s.LockWithFallback(fstaid.NewFileLock(local.String()))
	if rec, err := again.Load(ctx); err != nil || rec == nil {
		t.Errorf("Load after the fallback failover = %v, %v; want the local record", rec, err)
	}
	if err := again.Acquire(ctx, testRecord("a")); !errors.Is(err, fstaid.ErrLocked) {
		t.Errorf("a second Acquire = %v, want ErrLocked", err)
	}
	if runs.Load() != 1 {
		t.Error("a handler ran again")
	}
	// A human re-arms it, etcd still down: Remove takes the local record
	// Load shows, and only that one.
	if err := again.Remove(ctx, testRecord("other")); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Errorf("Remove of another record = %v, want ErrRecordChanged", err)
	}
	if err := again.Remove(ctx, rec); err != nil {
		t.Errorf("Remove of the local record shown = %v", err)
	}
	if rec, err := local.Load(ctx); rec != nil || err != nil {
		t.Errorf("local record after Remove = %+v, %v; want none", rec, err)
	}
}

// Start-up still needs etcd: without a local record, an unreachable etcd
// is unknown, not free.
func TestFallbackLockStartNeedsEtcd(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/fallback-start", "a", endpoints(srv), WithTimeout(500*time.Millisecond))
	local := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	f := s.LockWithFallback(local)
	srv.stop()
	ctx := ctxTimeout(t, 2*time.Second)
	if _, err := f.Load(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Errorf("Load with etcd down = %v, want ErrLockUnavailable", err)
	}
	if err := f.Probe(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Errorf("Probe with etcd down = %v, want ErrLockUnavailable", err)
	}
}

// A reachable etcd decides: a record held by another monitor is never
// bypassed through the local lock, and a free one is taken in etcd.
func TestFallbackLockEtcdDecidesWhenReachable(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)

	a := newStore(t, "/fallback-held", "a", endpoints(srv))
	b := newStore(t, "/fallback-held", "b", endpoints(srv))
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	bLocal := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	fb := b.LockWithFallback(bLocal)
	if rec, err := fb.Load(ctx); err != nil || rec == nil || rec.Host != "a" {
		t.Errorf("Load = %+v, %v; want a's record from etcd", rec, err)
	}
	if err := fb.Acquire(ctx, testRecord("b")); !errors.Is(err, fstaid.ErrLocked) {
		t.Errorf("Acquire with a's record in etcd = %v, want ErrLocked", err)
	}
	if rec, _ := bLocal.Load(ctx); rec != nil {
		t.Errorf("the local lock was written: %+v", rec)
	}

	c := newStore(t, "/fallback-free", "c", endpoints(srv))
	cLocal := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	fc := c.LockWithFallback(cLocal)
	if err := fc.Acquire(ctx, testRecord("c")); err != nil {
		t.Fatalf("Acquire with etcd up and free: %v", err)
	}
	if fc.Fallen() {
		t.Error("Fallen() with etcd up")
	}
	if rec, err := c.Lock().Load(ctx); err != nil || rec == nil || rec.Host != "c" {
		t.Errorf("etcd record = %+v, %v; want c's", rec, err)
	}
	if rec, _ := cLocal.Load(ctx); rec != nil {
		t.Errorf("the local lock was written with etcd up: %+v", rec)
	}
	if err := fc.Update(ctx, testRecord("c")); err != nil {
		t.Errorf("Update through etcd: %v", err)
	}
}

// enableAuth creates users "ro" (read only) and "rw" (read-write) on
// every key under each prefix (passwords: name+"pw") and turns auth on.
func enableAuth(t *testing.T, srv *member, prefixes ...string) {
	t.Helper()
	admin := newClient(t, endpoints(srv)...)
	ctx := ctxTimeout(t, 20*time.Second)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.UserAdd(ctx, "root", "rootpw"))
	must(admin.UserGrantRole(ctx, "root", "root"))
	for _, u := range []struct {
		name string
		perm clientv3.PermissionType
	}{{"ro", clientv3.PermissionType(clientv3.PermRead)}, {"rw", clientv3.PermissionType(clientv3.PermReadWrite)}} {
		must(admin.UserAdd(ctx, u.name, u.name+"pw"))
		must(admin.RoleAdd(ctx, u.name))
		for _, p := range prefixes {
			must(admin.RoleGrantPermission(ctx, u.name, p+"/", clientv3.GetPrefixRangeEnd(p+"/"), u.perm))
		}
		must(admin.UserGrantRole(ctx, u.name, u.name))
	}
	must(admin.AuthEnable(ctx))
}

// openAs opens a Store as user (see enableAuth), closed when the test ends.
func openAs(t *testing.T, srv *member, prefix, id, user string) *Store {
	t.Helper()
	s, err := Open(&Config{Endpoints: endpoints(srv), Prefix: prefix, Username: user, Password: user + "pw", DialTimeout: 10 * time.Second, MonitorID: id}, nil, WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// An etcd that answers "no" is not an unreachable etcd: monitor B, whose
// user may only read, must see monitor A's record as locked, not write
// its local lock and fail over; and a refusal with no record there must
// not fall back either.
func TestFallbackLockNotOnRefusal(t *testing.T) {
	srv := startEtcd(t)
	enableAuth(t, srv, "/refused-held", "/refused-free")
	ctx := ctxTimeout(t, 30*time.Second)

	a := openAs(t, srv, "/refused-held", "a", "rw")
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	bLocal := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	fb := openAs(t, srv, "/refused-held", "b", "ro").LockWithFallback(bLocal)
	var le *fstaid.LockedError
	if err := fb.Acquire(ctx, testRecord("b")); !errors.As(err, &le) || le.Record == nil || le.Record.Host != "a" {
		t.Errorf("read-only Acquire with a's record in etcd = %v, want a LockedError carrying a's record", err)
	}
	if fb.Fallen() {
		t.Error("fell back to the local lock although etcd holds a's record")
	}
	if rec, _ := bLocal.Load(ctx); rec != nil {
		t.Errorf("the local lock was written: %+v", rec)
	}

	cLocal := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	fc := openAs(t, srv, "/refused-free", "c", "ro").LockWithFallback(cLocal)
	err := fc.Acquire(ctx, testRecord("c"))
	if !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, ErrRefused) || errors.Is(err, ErrUnreachable) {
		t.Errorf("read-only Acquire with no record = %v, want ErrLockUnavailable, refused", err)
	}
	if fc.Fallen() {
		t.Error("fell back to the local lock on a refusal")
	}
	if rec, _ := cLocal.Load(ctx); rec != nil {
		t.Errorf("the local lock was written on a refusal: %+v", rec)
	}
}

// A creation that got no answer falls back only if a linearizable read
// of the record gets none either: here etcd answers the read (no record),
// so the monitor does not fail over on its own, and the next attempt
// decides in etcd.
func TestFallbackLockNeedsReadToFailToo(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)
	f := &fault{method: "/etcdserverpb.KV/Txn"}
	local := fstaid.NewFileLock(filepath.Join(t.TempDir(), "fstaid.8080.lock"))
	fb := newFaultyStore(t, "/fallback-read", "a", endpoints(srv), f).LockWithFallback(local)
	f.mode.Store(faultUnsent)
	err := fb.Acquire(ctx, testRecord("a"))
	if !errors.Is(err, ErrUnreachable) || f.calls.Load() == 0 {
		t.Errorf("Acquire with the creation unanswered = %v, want ErrUnreachable", err)
	}
	if fb.Fallen() {
		t.Error("fell back to the local lock although etcd answered the read")
	}
	if rec, _ := local.Load(ctx); rec != nil {
		t.Errorf("the local lock was written: %+v", rec)
	}
	f.mode.Store(faultNone)
	if err := fb.Acquire(ctx, testRecord("a")); err != nil || fb.Fallen() {
		t.Errorf("next Acquire = %v (fallen %v), want the etcd lock", err, fb.Fallen())
	}
}

// notDurableLock is a local lock that publishes the record and then
// reports the directory fsync failed, as fstaid.FileLock does.
type notDurableLock struct {
	mu  sync.Mutex
	rec *fstaid.Record
}

func (l *notDurableLock) Load(context.Context) (*fstaid.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec, nil
}

func (l *notDurableLock) Acquire(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec != nil {
		return &fstaid.LockedError{Lock: "local", Record: l.rec}
	}
	c := *rec
	l.rec = &c
	return fmt.Errorf("fstaid: lock local published but not durable: fsync: input/output error: %w", fstaid.ErrLockNotDurable)
}

func (l *notDurableLock) Update(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	return nil
}

func (l *notDurableLock) Done() <-chan struct{} { return nil }

// The local lock of the fallback was taken but is not durable: taken all
// the same. The failover runs and its record is updated, never "lock
// unavailable" with a record left behind that blocks every later attempt.
func TestFallbackLockLocalNotDurableIsTaken(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/fallback-not-durable", "a", endpoints(srv), WithTimeout(500*time.Millisecond))
	local := &notDurableLock{}
	f := s.LockWithFallback(local)
	srv.stop()
	ctx := ctxTimeout(t, 30*time.Second)
	rec := testRecord("a")
	err := f.Acquire(ctx, rec)
	if !errors.Is(err, fstaid.ErrLockNotDurable) || errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Fatalf("Acquire = %v, want ErrLockNotDurable alone", err)
	}
	rec.State = fstaid.RecordDone
	if err := f.Update(ctx, rec); err != nil {
		t.Fatalf("Update after a taken but not durable local lock: %v", err)
	}
	if got, _ := local.Load(ctx); got == nil || got.State != fstaid.RecordDone {
		t.Errorf("local record %+v, want done", got)
	}
}
