package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fstaid/fstaid"
)

func verdictStores(t *testing.T, prefix string, n int, eps []string, opts ...Option) []*Store {
	var ss []*Store
	for i := range n {
		ss = append(ss, newStore(t, prefix, fmt.Sprintf("mon%d", i), eps, opts...))
	}
	return ss
}

func TestQuorumCountsDistinctDeadVerdicts(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/q", 3, endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)
	q := ss[2].Votes().Quorum(2) // mon2, not armed: only counts

	for i, tc := range []struct {
		publish   func() error
		wantVeto  bool
		dead, all int
	}{
		{func() error { return nil }, true, 0, 0},
		{func() error { return ss[0].Votes().Publish(ctx, true, "refused") }, true, 1, 1},
		// The same monitor again is still one verdict.
		{func() error { return ss[0].Votes().Publish(ctx, true, "refused") }, true, 1, 1},
		{func() error { return ss[1].Votes().Publish(ctx, false, "") }, true, 1, 2},
		{func() error { return ss[1].Votes().Publish(ctx, true, "timeout") }, false, 2, 2},
		{func() error { return ss[0].Votes().Withdraw(ctx) }, true, 1, 1},
	} {
		if err := tc.publish(); err != nil {
			t.Fatal(err)
		}
		err := q.Check(ctx)
		if veto := err == nil; veto != tc.wantVeto {
			t.Errorf("step %d: Check = %v, want veto %v", i, err, tc.wantVeto)
		}
		vs, lerr := ss[2].Votes().List(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		dead := 0
		for _, v := range vs {
			if v.Dead() {
				dead++
			}
		}
		if dead != tc.dead || len(vs) != tc.all {
			t.Errorf("step %d: verdicts %+v, want %d of %d dead", i, vs, tc.dead, tc.all)
		}
	}
}

// Armed (as the observer reports), the Quorum check publishes this
// monitor's own dead verdict before counting.
func TestQuorumArmedPublishesOwnVerdict(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/qa", 2, endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)
	v := ss[1].Votes()
	obs := v.Observer()
	q := v.Quorum(2)

	if err := ss[0].Votes().Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	// The start-up check: not armed, so mon1 only counts: 1 < 2.
	if err := q.Check(ctx); err != nil {
		t.Fatalf("start-up Check = %v, want veto", err)
	}
	obs(fstaid.Notice{Kind: fstaid.NoticeArmed, State: fstaid.StateArmed})
	if err := q.Check(ctx); err == nil {
		t.Fatal("armed Check with mon0 dead and mon1's primary failed: veto, want dead confirmed")
	}
	// A healthy round publishes alive (in the background).
	obs(fstaid.Notice{Kind: fstaid.NoticeRound, State: fstaid.StateArmed,
		Round: &fstaid.Round{Number: 7, Primary: &fstaid.Result{Name: "primary", Passed: true}, Verdict: fstaid.VerdictHealthy}})
	eventually(t, 5*time.Second, "mon1 publishes alive", func() bool {
		vs, err := v.List(ctx)
		return err == nil && len(vs) == 2 && vs[1].Monitor == "mon1" && !vs[1].Dead() && vs[1].Round == 7
	})
	// A failed self check withdraws the verdict.
	obs(fstaid.Notice{Kind: fstaid.NoticeRound, State: fstaid.StateArmed,
		Round: &fstaid.Round{Number: 8, Self: &fstaid.Result{Name: "self"}, Verdict: fstaid.VerdictSelfCheckFailed}})
	eventually(t, 5*time.Second, "mon1 withdraws", func() bool {
		vs, err := v.List(ctx)
		return err == nil && len(vs) == 1 && vs[0].Monitor == "mon0"
	})
	// Stopping withdraws too, and disarms.
	if err := v.Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	obs(fstaid.Notice{Kind: fstaid.NoticeStopped, State: fstaid.StateStopped})
	eventually(t, 5*time.Second, "mon1 withdraws on stop", func() bool {
		vs, err := v.List(ctx)
		return err == nil && len(vs) == 1
	})
	if err := q.Check(ctx); err != nil {
		t.Fatalf("Check after stop = %v, want veto (not armed: no own verdict)", err)
	}
}

// A verdict counts only while its lease lives: one TTL after it was last
// published. Expired verdicts are not counted.
func TestExpiredVerdictsNotCounted(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/exp", 3, endpoints(srv), WithVoteTTL(time.Second))
	ctx := ctxTimeout(t, 20*time.Second)
	q := ss[2].Votes().Quorum(2)
	for _, s := range ss[:2] {
		if err := s.Votes().Publish(ctx, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Check(ctx); err == nil {
		t.Fatal("two fresh dead verdicts: veto, want dead confirmed")
	}
	start := time.Now()
	eventually(t, 10*time.Second, "verdicts expire", func() bool {
		vs, err := ss[2].Votes().List(ctx)
		return err == nil && len(vs) == 0
	})
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("verdicts expired after %v; a TTL of 1s was asked", d)
	}
	if err := q.Check(ctx); err != nil {
		t.Fatalf("expired verdicts counted: %v", err)
	}
	// Publishing again after expiry takes a new lease and counts again.
	for _, s := range ss[:2] {
		if err := s.Votes().Publish(ctx, true, ""); err != nil {
			t.Fatalf("Publish after the lease expired: %v", err)
		}
	}
	if err := q.Check(ctx); err == nil {
		t.Fatal("republished dead verdicts not counted")
	}
}

// Publishing renews the lease: each Publish after the first puts the
// verdict back to its full TTL under the same lease, so a monitor that
// keeps publishing keeps its verdict. The test publishes again each time
// etcd reports the lease has run down by a second (TimeToLive counts
// whole seconds, rounded down).
func TestPublishRenewsVerdict(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/renew", 1, endpoints(srv), WithVoteTTL(5*time.Second))
	c := newClient(t, endpoints(srv)...)
	ctx := ctxTimeout(t, 20*time.Second)
	v := ss[0].Votes()
	left := func(lease clientv3.LeaseID) int64 {
		t.Helper()
		ttl, err := c.TimeToLive(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		return ttl.TTL
	}
	// publish returns the verdict's lease and the seconds it has left.
	publish := func() (clientv3.LeaseID, int64) {
		t.Helper()
		if err := v.Publish(ctx, true, ""); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(ctx, ss[0].voteKey())
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("verdict after Publish: %+v %v", resp, err)
		}
		lease := clientv3.LeaseID(resp.Kvs[0].Lease)
		return lease, left(lease)
	}
	lease, full := publish()
	for range 2 {
		var before int64
		eventually(t, 5*time.Second, "the verdict's lease running down", func() bool {
			before = left(lease)
			return before < full
		})
		again, after := publish()
		if again != lease {
			t.Fatalf("republished under lease %x, want %x renewed", again, lease)
		}
		if after <= before {
			t.Fatalf("the lease had %d s left before Publish, %d s after: not renewed", before, after)
		}
	}
}

// When etcd cannot be read, the quorum check vetoes, and does so before
// its deadline (a timed-out check would count as failed).
func TestQuorumVetoesWhenEtcdDown(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/down", 2, endpoints(srv))
	ctx := ctxTimeout(t, 20*time.Second)
	v := ss[1].Votes()
	v.Observer()(fstaid.Notice{Kind: fstaid.NoticeArmed})
	if err := ss[0].Votes().Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := v.Quorum(1).Check(cctx); err != nil {
		t.Fatalf("Check with etcd down = %v, want veto", err)
	}
	if cctx.Err() != nil {
		t.Fatalf("Check returned after its deadline (%v): the Monitor would count it as timed out", time.Since(start))
	}
}

func TestQuorumPanicsOnBadK(t *testing.T) {
	srv := startEtcd(t)
	s := newStore(t, "/bad", "a", endpoints(srv))
	defer func() {
		if recover() == nil {
			t.Fatal("Quorum(0) did not panic")
		}
	}()
	s.Votes().Quorum(0)
}

func TestVerdictsClose(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/close", 2, endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)
	v := ss[0].Votes()
	if err := v.Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := ss[0].Close(); err != nil {
		t.Fatal(err)
	}
	// Close revoked the lease: the verdict is gone at once, not after a TTL.
	if vs, err := ss[1].Votes().List(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("verdicts after Close: %+v %v", vs, err)
	}
	if err := v.Publish(ctx, true, ""); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
}

// A verdict is renewed only by a write that succeeded: when the Put fails
// (the NOSPACE alarm) while the lease could still be kept alive, the
// previous "dead" verdict is withdrawn at once, instead of being renewed
// on and counted for a target this monitor now sees alive.
func TestFailedPutDoesNotRenewStaleVerdict(t *testing.T) {
	srv := startEtcd(t)
	f := &fault{method: "/etcdserverpb.KV/Txn"} // the verdict write
	a := newFaultyStore(t, "/stale", "a", endpoints(srv), f, WithVoteTTL(2*time.Second))
	b := newStore(t, "/stale", "b", endpoints(srv))
	ctx := ctxTimeout(t, 30*time.Second)
	if err := a.Votes().Publish(ctx, true, "primary check failed"); err != nil {
		t.Fatal(err)
	}
	if vs, err := b.Votes().List(ctx); err != nil || len(vs) != 1 || !vs[0].Dead() {
		t.Fatalf("verdicts = %+v, %v; want a's dead verdict", vs, err)
	}
	// The target is back, but every write now fails, in this round and
	// the next ones. The first failure withdraws the verdict at once
	// (still within its TTL); the next ones, each under a fresh lease,
	// publish nothing either.
	f.mode.Store(faultNoSpace)
	for round := range 3 {
		err := a.Votes().Publish(ctx, false, "")
		if !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, ErrRefused) {
			t.Fatalf("round %d: Publish with Put failing = %v, want a refusal", round, err)
		}
		if vs, err := b.Votes().List(ctx); err != nil || len(vs) != 0 {
			t.Fatalf("round %d: verdicts after a failed write = %+v, %v; want none (the stale dead verdict withdrawn)", round, vs, err)
		}
	}
	// Writes work again: the new verdict is published and lives.
	f.mode.Store(faultNone)
	if err := a.Votes().Publish(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	if vs, err := b.Votes().List(ctx); err != nil || len(vs) != 1 || vs[0].Dead() {
		t.Fatalf("verdicts = %+v, %v; want a's alive verdict", vs, err)
	}
}

// Two live processes with one monitor ID (cloned hosts): the second finds
// the first at start (CheckUnique), and once both publish each one's
// writes find the other's; Status shows it. A verdict left by an earlier
// run that nobody renews is not a duplicate.
func TestDuplicateMonitorID(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)
	a := newStore(t, "/dup", "db-monitor", endpoints(srv), WithVoteTTL(2*time.Second))
	b := newStore(t, "/dup", "db-monitor", endpoints(srv), WithVoteTTL(2*time.Second))

	// A leftover: a published once and then stopped (died).
	if err := a.Votes().Publish(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Votes().CheckUnique(ctx); err != nil {
		t.Fatalf("CheckUnique with a verdict nobody renews = %v, want nil", err)
	}

	// a is alive: it publishes every 300ms, as its rounds would.
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			a.Votes().Publish(pctx, false, "")
			select {
			case <-pctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	eventually(t, 5*time.Second, "a's verdict", func() bool {
		vs, err := b.Votes().List(ctx)
		return err == nil && len(vs) == 1
	})
	err := b.Votes().CheckUnique(ctx)
	var de *DuplicateError
	if !errors.As(err, &de) || !errors.Is(err, ErrDuplicateMonitor) || de.PID != os.Getpid() {
		t.Errorf("CheckUnique with a live publisher under the same ID = %v, want a DuplicateError", err)
	}
	// Suppose b starts anyway: both writes notice the other.
	eventually(t, 5*time.Second, "both processes see the duplicate", func() bool {
		b.Votes().Publish(ctx, false, "")
		return a.Votes().Duplicate() != nil && b.Votes().Duplicate() != nil
	})
	stop()
	<-done
	st, err := b.Status(ctx)
	if err != nil || !strings.Contains(strings.Join(st.Warnings, "\n"), `monitor ID "db-monitor" is used by another live process`) {
		t.Errorf("Status = %+v, %v; want a duplicate warning", st, err)
	}

	// Distinct IDs never see one.
	c := newStore(t, "/dup", "other", endpoints(srv))
	for range 3 {
		if err := c.Votes().Publish(ctx, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Votes().Duplicate(); err != nil {
		t.Errorf("a unique monitor sees a duplicate: %v", err)
	}
	if err := c.Votes().CheckUnique(ctx); err != nil {
		t.Errorf("CheckUnique of a monitor holding its own key = %v", err)
	}
}

// Votes carry the target and a config digest; the Quorum counts only
// those matching its own, and Status counts the live monitors against k.
func TestQuorumCountsOnlyMatchingVerdicts(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 20*time.Second)
	a := newStore(t, "/scope", "a", endpoints(srv), WithVoteScope("db1 10.0.0.5:5432", "cfg-1"))
	b := newStore(t, "/scope", "b", endpoints(srv), WithVoteScope("db1 10.0.0.5:5432", "cfg-1"))
	other := newStore(t, "/scope", "c", endpoints(srv), WithVoteScope("db2 10.0.0.6:5432", "cfg-1"))
	stale := newStore(t, "/scope", "d", endpoints(srv), WithVoteScope("db1 10.0.0.5:5432", "cfg-0"))
	for _, s := range []*Store{a, other, stale} {
		if err := s.Votes().Publish(ctx, true, "primary check failed"); err != nil {
			t.Fatal(err)
		}
	}
	q := b.Votes().Quorum(2)
	if err := q.Check(ctx); err != nil {
		t.Fatalf("Quorum(2) with one matching dead verdict (and two about another target/config) = %v, want a veto", err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st.Live) != "[a]" || fmt.Sprint(st.Mismatched) != "[c d]" || st.Quorum != 2 {
		t.Errorf("Status live %v mismatched %v quorum %d; want [a], [c d], 2", st.Live, st.Mismatched, st.Quorum)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "only 1 live monitor(s)") || !strings.Contains(w, "c, d are about another target") {
		t.Errorf("Status warnings:\n%s", w)
	}
	if err := b.Votes().Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := q.Check(ctx); err == nil {
		t.Error("Quorum(2) with two matching dead verdicts vetoed")
	}
}

// A monitor restarted right after a SIGKILL finds its dead predecessor's
// verdict, and that predecessor's last write may land after the check
// began (it was in flight when the process died). That is no duplicate.
// Found by the fault campaign (quorum/336658): the restarted monitor
// exited 78, which systemd never restarts.
func TestCheckUniqueIgnoresADeadProcessLastWrite(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)
	dead := newStore(t, "/dup-late", "db-monitor", endpoints(srv), WithVoteTTL(2*time.Second))
	read := &fault{method: "/etcdserverpb.KV/Range", returned: make(chan struct{}, 1)}
	restarted := newFaultyStore(t, "/dup-late", "db-monitor", endpoints(srv), read, WithVoteTTL(2*time.Second))
	if err := dead.Votes().Publish(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	checked := make(chan error, 1)
	read.mode.Store(faultSignal)
	go func() { checked <- restarted.Votes().CheckUnique(ctx) }()
	// CheckUnique has read the key: what is written now, it sees through
	// its watch.
	select {
	case <-read.returned:
	case <-ctx.Done():
		t.Fatal("CheckUnique never read its verdict key")
	}
	// The write that was in flight when the predecessor died.
	if err := dead.Votes().Publish(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-checked; err != nil {
		t.Errorf("CheckUnique after a dead process's last write = %v, want nil", err)
	}
}

// The quorum is ready while enough distinct monitors publish, not when
// they fall below k, and the problem names who is left.
func TestQuorumReady(t *testing.T) {
	srv := startEtcd(t)
	ss := verdictStores(t, "/qr", 3, endpoints(srv))
	ctx := ctxTimeout(t, 10*time.Second)
	q := ss[2].Votes().Quorum(3)
	for _, s := range ss {
		if err := s.Votes().Publish(ctx, false, ""); err != nil {
			t.Fatal(err)
		}
	}
	if ps := q.Ready(ctx); len(ps) != 0 {
		t.Fatalf("Ready with 3 of 3 = %v", ps)
	}
	if err := ss[1].Votes().Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	ps := q.Ready(ctx)
	if len(ps) != 1 || ps[0].Kind != fstaid.ProblemQuorum || ps[0].Resource != "/qr/verdicts/" ||
		!strings.Contains(ps[0].Message, "only 2 live monitor(s) (mon0, mon2, this one included) for quorum 3") {
		t.Fatalf("Ready with 2 of 3 = %v", ps)
	}
	// This monitor counts even before its own verdict is fresh.
	if err := ss[2].Votes().Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ss[1].Votes().Publish(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	if ps := q.Ready(ctx); len(ps) != 0 {
		t.Fatalf("Ready with mon0, mon1 and this unpublished one = %v", ps)
	}
	srv.stop()
	if ps := q.Ready(ctxTimeout(t, 10*time.Second)); len(ps) != 1 || ps[0].Kind != fstaid.ProblemStore {
		t.Fatalf("Ready with etcd down = %v, want a store problem", ps)
	}
}
