package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// A three-member cluster keeps the lock working with one member down (a
// quorum of two remains), and fails closed with two down.
func TestClusterSurvivesOneMember(t *testing.T) {
	ms := startCluster(t, 3)
	ctx := ctxTimeout(t, 60*time.Second)
	a := newStore(t, "/cluster", "a", endpoints(ms...), WithTimeout(5*time.Second))
	b := newStore(t, "/cluster", "b", endpoints(ms...), WithTimeout(5*time.Second))
	if err := a.Lock().Probe(ctx); err != nil {
		t.Fatal(err)
	}

	// Stop the leader: the worst member to lose.
	leader := -1
	for i, m := range ms {
		if m.e.Server.Leader() == m.e.Server.MemberID() {
			leader = i
		}
	}
	if leader < 0 {
		leader = 0
	}
	ms[leader].stop()

	if err := a.Lock().Probe(ctx); err != nil {
		t.Fatalf("Probe with one member of three down: %v", err)
	}
	if rec, err := b.Lock().Load(ctx); err != nil || rec != nil {
		t.Fatalf("Load with one member down = %+v, %v", rec, err)
	}
	if err := a.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatalf("Acquire with one member down: %v", err)
	}
	if err := b.Lock().Acquire(ctx, testRecord("b")); !errors.Is(err, fstaid.ErrLocked) {
		t.Fatalf("second Acquire with one member down = %v, want ErrLocked", err)
	}
	done := testRecord("a")
	done.State = fstaid.RecordDone
	if err := a.Lock().Update(ctx, done); err != nil {
		t.Fatalf("Update with one member down: %v", err)
	}
	if err := b.Votes().Publish(ctx, true, ""); err != nil {
		t.Fatalf("Publish with one member down: %v", err)
	}

	// A second member down: no quorum. Everything fails closed.
	// (a follower: stopping a leader waits for a leadership transfer).
	for i, m := range ms {
		if i != leader && m.e.Server.Leader() != m.e.Server.MemberID() {
			m.stop()
			break
		}
	}
	c := newStore(t, "/cluster2", "c", endpoints(ms...))
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Lock().Acquire(short, testRecord("c")); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Fatalf("Acquire without quorum = %v, want ErrLockUnavailable", err)
	}
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Lock().Probe(short); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Fatalf("Probe without quorum = %v, want ErrLockUnavailable", err)
	}
}

// Three monitors, each talking to a different member of a three-member
// cluster, see the target die at once: exactly one handler runs.
func TestClusterThreeMonitorsFailOverOnce(t *testing.T) {
	ms := startCluster(t, 3)
	var handled atomic.Int32
	down := &target{}
	down.dead.Store(true)
	var mons []*fstaid.Monitor
	for i, m := range ms {
		s := newStore(t, "/three", fmt.Sprintf("mon%d", i), []string{m.endpoint})
		mons = append(mons, newMonitor(t, monitorSpec{store: s, view: down, handled: &handled, startup: fstaid.StartupCheckOff}))
	}
	ctx := ctxTimeout(t, 30*time.Second)
	errs := runAll(ctx, mons)
	if n := handled.Load(); n != 1 {
		t.Fatalf("handler ran %d times across three monitors on three members, want 1 (results %v)", n, errs)
	}
	failedOver := 0
	for _, err := range errs {
		if errors.Is(err, fstaid.ErrFailedOver) {
			failedOver++
		} else if !errors.Is(err, fstaid.ErrLocked) {
			t.Errorf("unexpected Run result %v", err)
		}
	}
	if failedOver != 1 {
		t.Fatalf("results %v: want exactly one failover", errs)
	}
}
