package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func testRecord(host string) *fstaid.Record {
	return &fstaid.Record{State: fstaid.RecordFailingOver, Time: time.Now(), Host: host, PID: 42,
		Event: &fstaid.Event{Reason: fstaid.ReasonAuto, Target: "db1"}}
}

func TestAcquireRaceExactlyOneWins(t *testing.T) {
	srv := startEtcd(t)
	const n = 10
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = newStore(t, "/race", fmt.Sprintf("mon%d", i), endpoints(srv))
	}
	ctx := ctxTimeout(t, 10*time.Second)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		wg.Go(func() {
			<-start
			errs[i] = s.Lock().Acquire(ctx, testRecord(fmt.Sprintf("host%d", i)))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("both %d and %d acquired the lock", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("nobody acquired the lock: %v", errs)
	}
	for i, err := range errs {
		if i == winner {
			continue
		}
		var le *fstaid.LockedError
		if !errors.As(err, &le) || !errors.Is(err, fstaid.ErrLocked) {
			t.Fatalf("loser %d: got %v, want a *LockedError", i, err)
		}
		if le.Record == nil || le.Record.Host != fmt.Sprintf("host%d", winner) {
			t.Errorf("loser %d sees record %+v, want the winner's (host%d)", i, le.Record, winner)
		}
		if le.Lock != stores[i].Lock().String() || le.Lock == "" {
			t.Errorf("loser %d: LockedError.Lock = %q", i, le.Lock)
		}
	}
	st, err := stores[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Holder == nil || st.Holder.Monitor != fmt.Sprintf("mon%d", winner) || st.Interrupted {
		t.Errorf("status holder %+v interrupted %v, want mon%d alive", st.Holder, st.Interrupted, winner)
	}
}

func TestUpdateOnlyByOwner(t *testing.T) {
	srv := startEtcd(t)
	a := newStore(t, "/upd", "a", endpoints(srv))
	b := newStore(t, "/upd", "b", endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)

	if err := b.Lock().Update(ctx, testRecord("b")); err == nil {
		t.Fatal("Update without Acquire succeeded")
	}
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock().Update(ctx, testRecord("b")); err == nil {
		t.Fatal("non-owner's Update succeeded")
	}
	done := testRecord("a")
	done.State = fstaid.RecordDone
	if err := a.Lock().Update(ctx, done); err != nil {
		t.Fatalf("owner's Update: %v", err)
	}
	rec, err := b.Lock().Load(ctx)
	if err != nil || rec == nil || rec.Host != "a" || rec.State != fstaid.RecordDone {
		t.Fatalf("Load after owner's Update = %+v, %v", rec, err)
	}

	// The record is removed by a human and b fails over: a's late Update
	// must not overwrite b's record, although a once owned the key.
	if _, err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock().Acquire(ctx, testRecord("b")); err != nil {
		t.Fatal(err)
	}
	err = a.Lock().Update(ctx, testRecord("a-late"))
	var le *fstaid.LockedError
	if !errors.As(err, &le) || le.Record == nil || le.Record.Host != "b" {
		t.Fatalf("stale owner's Update: got %v, want a LockedError with b's record", err)
	}
	if rec, _ := b.Lock().Load(ctx); rec == nil || rec.Host != "b" {
		t.Fatalf("b's record was overwritten: %+v", rec)
	}
}

func TestLoad(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/load", "a", endpoints(srv))
	c := s.Client()
	ctx := ctxTimeout(t, 10*time.Second)

	rec, err := s.Lock().Load(ctx)
	if rec != nil || err != nil {
		t.Fatalf("absent: Load = %+v, %v; want nil, nil", rec, err)
	}
	want := testRecord("h")
	data, _ := json.Marshal(want)
	for _, tc := range []struct {
		name   string
		value  string
		legacy bool
	}{
		{"record", string(data), false},
		{"garbage", "not json {", true},
		{"empty", "", true},
		{"json without state", `{"host":"x"}`, true},
	} {
		if _, err := c.Put(ctx, s.Lock().Key(), tc.value); err != nil {
			t.Fatal(err)
		}
		rec, err := s.Lock().Load(ctx)
		if err != nil || rec == nil {
			t.Fatalf("%s (%q): Load = %+v, %v; want a record", tc.name, tc.value, rec, err)
		}
		if rec.Legacy != tc.legacy {
			t.Errorf("%s (%q): Legacy = %v, want %v", tc.name, tc.value, rec.Legacy, tc.legacy)
		}
		if !tc.legacy && (rec.Host != want.Host || !rec.Time.Equal(want.Time) || rec.State != want.State) {
			t.Errorf("%s: Load = %+v, want %+v", tc.name, rec, want)
		}
		// Whatever is there, Acquire refuses.
		if err := s.Lock().Acquire(ctx, testRecord("x")); !errors.Is(err, fstaid.ErrLocked) {
			t.Errorf("%s: Acquire over it = %v, want ErrLocked", tc.name, err)
		}
	}
}

// A holder that dies (SIGKILL: its client just goes away, nothing is
// revoked) leaves the record: it has no lease. Only the holder key goes,
// once its lease expires, and Status then calls the failover interrupted.
func TestRecordSurvivesHolderDeath(t *testing.T) {
	srv := startEtcd(t)
	deadClient := newClient(t, endpoints(srv)...)
	dead, err := NewStore(deadClient, "/kill", WithMonitorID("dead"), WithLogger(nil), WithHolderTTL(time.Second), WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	other := newStore(t, "/kill", "other", endpoints(srv))
	ctx := ctxTimeout(t, 20*time.Second)

	if err := dead.Lock().Acquire(ctx, testRecord("dead")); err != nil {
		t.Fatal(err)
	}
	resp, err := other.Client().Get(ctx, dead.Lock().Key())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("record: %v %v", resp, err)
	}
	if resp.Kvs[0].Lease != 0 {
		t.Fatalf("the record is bound to lease %x; it must have none", resp.Kvs[0].Lease)
	}
	deadClient.Close() // the process is gone: no revoke, no keep-alive

	select {
	case <-dead.Lock().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the client went away")
	}
	eventually(t, 10*time.Second, "holder key expires", func() bool {
		st, err := other.Status(ctx)
		return err == nil && st.Holder == nil
	})
	st, err := other.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Record == nil || st.Record.Host != "dead" || !st.Interrupted {
		t.Fatalf("status after the holder died: record %+v interrupted %v; want dead's record, interrupted", st.Record, st.Interrupted)
	}
	err = other.Lock().Acquire(ctx, testRecord("other"))
	if !errors.Is(err, fstaid.ErrLocked) {
		t.Fatalf("second monitor's Acquire after the holder died: %v, want ErrLocked", err)
	}
}

// Done closes when the holder lease is lost while the lock is held (here:
// revoked by someone else); the record stays.
func TestDoneWhenHolderLeaseRevoked(t *testing.T) {
	srv := startEtcd(t)
	a := newStore(t, "/done", "a", endpoints(srv), WithHolderTTL(3*time.Second)) // renewed every second
	ctx := ctxTimeout(t, 20*time.Second)
	select {
	case <-a.Lock().Done():
		t.Fatal("Done closed before Acquire")
	default:
	}
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil || st.Holder == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
	admin := newClient(t, endpoints(srv)...)
	if _, err := admin.Revoke(ctx, clientv3.LeaseID(st.Holder.Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Lock().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the holder lease was revoked")
	}
	if rec, err := a.Lock().Load(ctx); err != nil || rec == nil {
		t.Fatalf("record after the lease was lost: %+v %v", rec, err)
	}
}

// Remove takes away the record shown (as Status or Load show it), with
// its holder key, and nothing else: a record updated since, gone, or a
// newer failover's is refused with ErrRecordChanged and left.
func TestRemoveOnlyTheRecordShown(t *testing.T) {
	srv := startEtcd(t)
	a := newStore(t, "/remove", "a", endpoints(srv))
	tool := newStore(t, "/remove", "tool", endpoints(srv)) // fstaidd unlock's
	ctx := ctxTimeout(t, 10*time.Second)
	if err := tool.Lock().Remove(ctx, testRecord("a")); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Fatalf("Remove with no record = %v, want ErrRecordChanged", err)
	}
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	st, err := tool.Status(ctx)
	if err != nil || st.Record == nil || st.Holder == nil {
		t.Fatalf("status %+v %v", st, err)
	}
	shown := st.Record
	// The owner records its handlers' outcome meanwhile.
	done := *shown
	done.State = fstaid.RecordDone
	if err := a.Lock().Update(ctx, &done); err != nil {
		t.Fatal(err)
	}
	if err := tool.Lock().Remove(ctx, shown); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Fatalf("Remove of an updated record = %v, want ErrRecordChanged", err)
	}
	if rec, err := tool.Lock().Load(ctx); err != nil || rec == nil || rec.State != fstaid.RecordDone {
		t.Fatalf("after a refused Remove: %+v, %v; want the updated record", rec, err)
	}
	shown, _ = tool.Lock().Load(ctx)
	if err := tool.Lock().Remove(ctx, shown); err != nil {
		t.Fatalf("Remove of the record shown = %v", err)
	}
	st, err = tool.Status(ctx)
	if err != nil || st.Record != nil || st.Holder != nil {
		t.Fatalf("status after Remove: %+v %v", st, err)
	}
	// Re-armed: a new Lock may take it, and the old record shown does
	// not remove the new one.
	b := newStore(t, "/remove", "b", endpoints(srv))
	if err := b.Lock().Acquire(ctx, testRecord("b")); err != nil {
		t.Fatalf("Acquire after Remove: %v", err)
	}
	if err := tool.Lock().Remove(ctx, shown); !errors.Is(err, fstaid.ErrRecordChanged) {
		t.Errorf("Remove of an old record over a new one = %v, want ErrRecordChanged", err)
	}
	if rec, _ := tool.Lock().Load(ctx); rec == nil || rec.Host != "b" {
		t.Errorf("the new record is %+v after a refused Remove", rec)
	}
}

func TestFailClosedWhenEtcdStops(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/closed", "a", endpoints(srv), WithTimeout(time.Second))
	ctx := ctxTimeout(t, 30*time.Second)
	if err := s.Lock().Probe(ctx); err != nil {
		t.Fatalf("Probe with etcd up: %v", err)
	}

	var handled sync.WaitGroup
	var runs int
	var mu sync.Mutex
	failing := make(chan struct{})
	stopped := make(chan struct{})
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.CheckFunc(func(ctx context.Context) error {
			select {
			case <-failing:
				return errors.New("target down")
			default:
				return nil
			}
		}), time.Second),
		fstaid.WithMaxAttempts(1),
		fstaid.WithInterval(50*time.Millisecond),
		fstaid.WithHandler("count", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			mu.Lock()
			runs++
			mu.Unlock()
			return nil
		}), time.Second),
		fstaid.WithLock(s.Lock()),
		fstaid.WithLockTimeout(500*time.Millisecond),
		fstaid.WithLogger(nil),
		fstaid.WithObserver(func(n fstaid.Notice) {
			if n.Kind == fstaid.NoticeArmed && n.Reason != "" {
				// Re-armed after a failed Acquire: the lock was unavailable.
				select {
				case <-stopped:
				default:
					close(stopped)
				}
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	handled.Add(1)
	go func() { defer handled.Done(); result <- m.Run(runCtx) }()
	eventually(t, 10*time.Second, "armed", func() bool { return m.Status().State == fstaid.StateArmed })

	srv.stop()
	close(failing)
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("the monitor never reported the lock unavailable")
	}
	cancel()
	if err := <-result; err != nil {
		t.Errorf("Run = %v, want nil (no failover)", err)
	}
	handled.Wait()
	mu.Lock()
	defer mu.Unlock()
	if runs != 0 {
		t.Fatalf("handler ran %d times with etcd down; want 0 (fail closed)", runs)
	}

	// Each call gives up at the Store's timeout (1s), also under the
	// caller's longer deadline (ctx's 30s; the daemon's Monitor gives the
	// lock 30s too): the error must come before ctx ends, or a monitor
	// would sit out rounds before it reports etcd lost.
	if err := s.Lock().Probe(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) || ctx.Err() != nil {
		t.Errorf("Probe with etcd down = %v (ctx %v), want ErrLockUnavailable from the Store's timeout", err, ctx.Err())
	}
	if err := s.Lock().Acquire(ctx, testRecord("a")); !errors.Is(err, fstaid.ErrLockUnavailable) || ctx.Err() != nil {
		t.Errorf("Acquire with etcd down = %v (ctx %v), want ErrLockUnavailable from the Store's timeout", err, ctx.Err())
	}
	// And a Monitor refuses to start.
	if err := m.Run(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Errorf("Run with etcd down = %v, want ErrLockUnavailable", err)
	}
}

// Probe proves write permission on the record and holder keys without
// writing: a read-only user fails it, a read-write user passes and can
// take the lock.
func TestProbeChecksPermissions(t *testing.T) {
	srv := startEtcd(t)
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
		must(admin.RoleGrantPermission(ctx, u.name, "/auth/", clientv3.GetPrefixRangeEnd("/auth/"), u.perm))
		must(admin.UserGrantRole(ctx, u.name, u.name))
	}
	must(admin.AuthEnable(ctx))

	open := func(user string) *Store {
		s, err := Open(&Config{Endpoints: endpoints(srv), Prefix: "/auth", Username: user, Password: user + "pw", DialTimeout: 10 * time.Second}, nil, WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ro, rw := open("ro"), open("rw")
	if rec, err := ro.Lock().Load(ctx); err != nil || rec != nil {
		t.Fatalf("read-only Load = %+v, %v", rec, err)
	}
	err := ro.Lock().Probe(ctx)
	if !errors.Is(err, fstaid.ErrLockUnavailable) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("read-only Probe = %v, want permission denied (ErrLockUnavailable)", err)
	}
	if err := ro.Votes().Probe(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Fatalf("read-only Votes.Probe = %v, want ErrLockUnavailable", err)
	}
	if err := rw.Lock().Probe(ctx); err != nil {
		t.Fatalf("read-write Probe: %v", err)
	}
	if err := rw.Votes().Probe(ctx); err != nil {
		t.Fatalf("read-write Votes.Probe: %v", err)
	}
	if vs, err := rw.Votes().List(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("Votes.Probe wrote something: %+v, %v", vs, err)
	}
	if rec, err := rw.Lock().Load(ctx); err != nil || rec != nil {
		t.Fatalf("Probe wrote something: %+v, %v", rec, err)
	}
	if err := rw.Lock().Acquire(ctx, testRecord("rw")); err != nil {
		t.Fatalf("read-write Acquire: %v", err)
	}
}

// A holder lease lost while a handler runs is recorded in the record
// (LockLost); the record itself stays and is updated with the outcome.
func TestMonitorRecordsLostLease(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/lost", "a", endpoints(srv), WithHolderTTL(3*time.Second))
	admin := newClient(t, endpoints(srv)...)
	down := &target{}
	down.dead.Store(true)
	m, err := fstaid.New(
		fstaid.WithPrimary(down.check(), time.Second),
		fstaid.WithMaxAttempts(1),
		fstaid.WithInterval(50*time.Millisecond),
		fstaid.WithStartupCheck(fstaid.StartupCheckOff),
		fstaid.WithHandler("slow", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			// The holder lease goes while the handler runs.
			st, err := s.Status(ctx)
			if err != nil || st.Holder == nil {
				return fmt.Errorf("status %+v: %v", st, err)
			}
			if _, err := admin.Revoke(ctx, clientv3.LeaseID(st.Holder.Lease)); err != nil {
				return err
			}
			select {
			case <-s.Lock().Done():
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), 10*time.Second),
		fstaid.WithLock(s.Lock()),
		fstaid.WithLogger(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 20*time.Second)
	err = m.Run(ctx)
	var fe *fstaid.FailoverError
	if !errors.As(err, &fe) || fe.Err != nil {
		t.Fatalf("Run = %v, want a successful failover", err)
	}
	if !fe.Record.LockLost {
		t.Error("the returned record does not show the lost lease")
	}
	rec, err := s.Lock().Load(ctx)
	if err != nil || rec == nil || !rec.LockLost || rec.State != fstaid.RecordDone {
		t.Fatalf("record in etcd = %+v, %v; want done with LockLost", rec, err)
	}
}

// An Acquire whose answer was lost may still have committed: a later
// Acquire on the same Lock recognises the record as its own (and takes
// the holder key back), while another Lock sees it locked.
func TestAcquireRecognisesLostCommit(t *testing.T) {
	srv := startEtcd(t)
	a := newStore(t, "/lostcommit", "a", endpoints(srv))
	b := newStore(t, "/lostcommit", "b", endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)

	// An earlier Acquire's transaction timed out on the client (it is
	// remembered as unconfirmed), but etcd applied it: reproduced by hand,
	// since a real etcd will not lose an answer on demand.
	first := testRecord("a")
	val, _ := json.Marshal(first)
	a.Lock().mu.Lock()
	a.Lock().unconfirmed = append(a.Lock().unconfirmed, val)
	a.Lock().mu.Unlock()
	// The creation committed (with no holder: its lease was revoked).
	if _, err := b.Client().Put(ctx, a.Lock().Key(), string(val)); err != nil {
		t.Fatal(err)
	}

	if err := b.Lock().Acquire(ctx, testRecord("b")); !errors.Is(err, fstaid.ErrLocked) {
		t.Fatalf("another Lock's Acquire = %v, want ErrLocked", err)
	}
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatalf("Acquire after a lost commit of its own: %v", err)
	}
	st, err := b.Status(ctx)
	if err != nil || st.Holder == nil || st.Holder.Monitor != "a" || st.Interrupted {
		t.Fatalf("status: %+v %v; want a holding, not interrupted", st, err)
	}
	done := testRecord("a")
	done.State = fstaid.RecordDone
	if err := a.Lock().Update(ctx, done); err != nil {
		t.Fatalf("owner's Update: %v", err)
	}
}

// A failover attempt's creation commits but its answer is lost, after a
// long outage in which every retry of the attempt failed: a retry
// carrying the attempt's ID (with a new time and event) recognises the
// record as its own, however many retries came before, and takes the
// holder key; another monitor's Lock stays locked out; the LockWatcher
// delivers the record with its ID, so the Monitor can tell it is its own.
func TestAcquireRecognisesOwnIDAfterLostReply(t *testing.T) {
	srv := startEtcd(t)
	f := &fault{method: "/etcdserverpb.KV/Txn"}
	a := newFaultyStore(t, "/lostreply", "a", endpoints(srv), f)
	b := newStore(t, "/lostreply", "b", endpoints(srv))
	ctx := ctxTimeout(t, 60*time.Second)
	const id = "attempt-7f3c"
	attempt := func() *fstaid.Record {
		rec := testRecord("a")
		rec.ID = id
		rec.Event.Primary = fstaid.Result{Error: fmt.Sprintf("round at %v", time.Now().UnixNano())}
		return rec
	}
	watch := b.Lock().Watch(ctx)

	// The outage: every retry of the attempt fails before reaching etcd.
	f.mode.Store(faultUnsent)
	for i := range maxUnconfirmed + 1 {
		if err := a.Lock().Acquire(ctx, attempt()); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Acquire %d during the outage = %v, want ErrUnreachable", i, err)
		}
	}
	// Then one commits, and its answer is lost.
	f.mode.Store(faultLostReply)
	err := a.Lock().Acquire(ctx, attempt())
	if !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Acquire whose answer was lost = %v, want ErrLockUnavailable (unreachable)", err)
	}
	f.mode.Store(faultNone)
	stored, err := b.Lock().Load(ctx)
	if err != nil || stored == nil || stored.ID != id {
		t.Fatalf("record in etcd = %+v, %v; want the attempt's (ID %s)", stored, err, id)
	}
	select {
	case rec := <-watch:
		if rec == nil || rec.ID != id {
			t.Fatalf("Watch delivered %+v, want the record with ID %s", rec, id)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not deliver the record")
	}

	// Another monitor (another attempt, another ID) is locked out.
	other := testRecord("b")
	other.ID = "attempt-b"
	var le *fstaid.LockedError
	if err := b.Lock().Acquire(ctx, other); !errors.As(err, &le) || le.Record.ID != id {
		t.Fatalf("another monitor's Acquire = %v, want a LockedError carrying ID %s", err, id)
	}
	// The retry of the attempt: other bytes, same ID.
	retry := attempt()
	if err := a.Lock().Acquire(ctx, retry); err != nil {
		t.Fatalf("retry of the attempt with its ID: %v", err)
	}
	st, err := b.Status(ctx)
	if err != nil || st.Holder == nil || st.Holder.Monitor != "a" || st.Interrupted {
		t.Fatalf("status: %+v %v; want a holding, not interrupted", st, err)
	}
	retry.State = fstaid.RecordDone
	if err := a.Lock().Update(ctx, retry); err != nil {
		t.Fatalf("owner's Update: %v", err)
	}
}
