package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// Watch delivers a record that already exists, one created later by
// another monitor, and closes its channel when ctx ends or the Store is
// closed.
func TestWatch(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)
	a := newStore(t, "/watch", "a", endpoints(srv))
	b := newStore(t, "/watch", "b", endpoints(srv))

	// With no record, Watch delivers nothing: the first thing on its
	// channel is the record b creates.
	wctx, wcancel := context.WithCancel(ctx)
	ch := a.Lock().Watch(wctx)
	if err := b.Lock().Acquire(ctx, testRecord("b")); err != nil {
		t.Fatal(err)
	}
	select {
	case rec, ok := <-ch:
		if !ok || rec == nil || rec.Host != "b" {
			t.Fatalf("Watch delivered %+v (open %v), want b's record", rec, ok)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not deliver the record b created")
	}
	if _, ok := <-ch; ok {
		t.Error("Watch's channel stayed open after delivering the record")
	}
	wcancel()

	// Already there: delivered at once.
	if rec := <-a.Lock().Watch(ctx); rec == nil || rec.Host != "b" {
		t.Fatalf("Watch with a record present delivered %+v", rec)
	}

	// Nothing comes: closed when ctx ends, and when the Store closes.
	c := newStore(t, "/watch-empty", "c", endpoints(srv))
	cctx, ccancel := context.WithCancel(ctx)
	ch = c.Lock().Watch(cctx)
	ccancel()
	if rec, ok := <-ch; ok {
		t.Fatalf("Watch delivered %+v after ctx ended", rec)
	}
	ch = c.Lock().Watch(ctx)
	c.Close()
	select {
	case rec, ok := <-ch:
		if ok {
			t.Fatalf("Watch delivered %+v after Close", rec)
		}
	case <-ctx.Done():
		t.Fatal("Watch's channel stayed open after the Store closed")
	}
}

// A monitor whose rounds never decide (one dead verdict, quorum 2) stops
// with ErrLocked, running no handler, once another monitor's record
// appears: it must not watch a failed-over target forever.
func TestOutvotedMonitorStopsOnAnotherFailover(t *testing.T) {
	srv := startEtcd(t)
	var handled atomic.Int32
	down := &target{}
	down.dead.Store(true)
	s := newStore(t, "/outvoted", "mon0", endpoints(srv), WithVoteTTL(2*time.Second))
	m := newMonitor(t, monitorSpec{store: s, view: down, quorum: 2, handled: &handled, startup: fstaid.StartupCheckOff})
	ctx := ctxTimeout(t, 30*time.Second)
	result := make(chan error, 1)
	go func() { result <- m.Run(ctx) }()
	eventually(t, 10*time.Second, "mon0's veto", func() bool {
		r := m.Status().LastRound
		return r != nil && r.Verdict == fstaid.VerdictSecondaryAlive
	})

	other := newStore(t, "/outvoted", "mon1", endpoints(srv))
	if err := other.Lock().Acquire(ctx, testRecord("mon1-host")); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-result:
	case <-time.After(15 * time.Second):
		t.Fatal("the outvoted monitor kept running after another monitor's failover")
	}
	var le *fstaid.LockedError
	if !errors.As(err, &le) || le.Record == nil || le.Record.Host != "mon1-host" {
		t.Fatalf("Run = %v, want a *LockedError with mon1's record", err)
	}
	if n := handled.Load(); n != 0 {
		t.Fatalf("handler ran %d times", n)
	}
}
