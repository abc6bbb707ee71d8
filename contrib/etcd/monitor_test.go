package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// target is a fake target whose health each monitor sees through its own
// switch (a monitor cut off from the target sees it dead).
type target struct{ dead atomic.Bool }

func (tg *target) check() fstaid.Check {
	return fstaid.CheckFunc(func(ctx context.Context) error {
		if tg.dead.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
}

type monitorSpec struct {
	store   *Store
	view    *target
	quorum  int // 0: no secondary
	startup fstaid.StartupCheck
	handled *atomic.Int32
}

func newMonitor(t *testing.T, sp monitorSpec) *fstaid.Monitor {
	t.Helper()
	opts := []fstaid.Option{
		fstaid.WithPrimary(sp.view.check(), time.Second),
		fstaid.WithMaxAttempts(1),
		fstaid.WithInterval(50 * time.Millisecond),
		fstaid.WithHandler("move-ip", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			sp.handled.Add(1)
			time.Sleep(50 * time.Millisecond) // give a racing monitor time to try
			return nil
		}), 5*time.Second),
		fstaid.WithLock(sp.store.Lock()),
		fstaid.WithLockTimeout(3 * time.Second),
		fstaid.WithLogger(nil),
		fstaid.WithTarget("db1"),
		fstaid.WithStartupCheck(sp.startup),
	}
	if sp.quorum > 0 {
		v := sp.store.Votes()
		opts = append(opts,
			fstaid.WithSecondary(v.Quorum(sp.quorum), 2*time.Second),
			fstaid.WithObserver(v.Observer()))
	}
	m, err := fstaid.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runAll runs the monitors until every one has returned or ctx ends, and
// returns their results.
func runAll(ctx context.Context, ms []*fstaid.Monitor) []error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Run(ctx) })
	}
	wg.Wait()
	return errs
}

func TestTwoMonitorsFailOverOnce(t *testing.T) {
	srv := startEtcd(t)
	var handled atomic.Int32
	down := &target{}
	down.dead.Store(true)
	var ms []*fstaid.Monitor
	for i := range 2 {
		s := newStore(t, "/two", fmt.Sprintf("mon%d", i), endpoints(srv))
		// The target is already dead: no start-up check.
		ms = append(ms, newMonitor(t, monitorSpec{store: s, view: down, handled: &handled, startup: fstaid.StartupCheckOff}))
	}
	ctx := ctxTimeout(t, 20*time.Second)
	errs := runAll(ctx, ms)
	if n := handled.Load(); n != 1 {
		t.Fatalf("handler ran %d times across both monitors, want exactly 1 (results %v)", n, errs)
	}
	var failedOver, locked int
	for _, err := range errs {
		switch {
		case errors.Is(err, fstaid.ErrFailedOver):
			failedOver++
		case errors.Is(err, fstaid.ErrLocked):
			locked++
		default:
			t.Errorf("unexpected Run result %v", err)
		}
	}
	if failedOver != 1 || locked != 1 {
		t.Fatalf("results %v: want one failover, one locked", errs)
	}
	check := newStore(t, "/two", "check", endpoints(srv))
	rec, err := check.Lock().Load(ctx)
	if err != nil || rec == nil || rec.State != fstaid.RecordDone || len(rec.Handlers) != 1 {
		t.Fatalf("record after the failover: %+v %v; want done with one handler outcome", rec, err)
	}
}

// Three monitors with k=2: one cut off from the target sees it dead, the
// others see it alive: no failover, however many rounds. When a second
// monitor sees it dead, exactly one failover happens across all three.
func TestQuorumMonitors(t *testing.T) {
	srv := startEtcd(t)
	var handled atomic.Int32
	views := []*target{{}, {}, {}}
	var ms []*fstaid.Monitor
	var stores []*Store
	for i := range 3 {
		s := newStore(t, "/k2", fmt.Sprintf("mon%d", i), endpoints(srv), WithVoteTTL(2*time.Second))
		stores = append(stores, s)
		ms = append(ms, newMonitor(t, monitorSpec{store: s, view: views[i], quorum: 2, handled: &handled}))
	}
	ctx := ctxTimeout(t, 30*time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan []error, 1)
	go func() { result <- runAll(runCtx, ms) }()
	for _, m := range ms {
		eventually(t, 10*time.Second, "armed", func() bool { return m.Status().State == fstaid.StateArmed })
	}

	// mon0 is partitioned from the target, not from etcd.
	views[0].dead.Store(true)
	eventually(t, 5*time.Second, "mon0's dead verdict and its veto", func() bool {
		r := ms[0].Status().LastRound
		return r != nil && r.Verdict == fstaid.VerdictSecondaryAlive
	})
	r0 := ms[0].Status().Rounds
	eventually(t, 10*time.Second, "ten more rounds of mon0", func() bool { return ms[0].Status().Rounds >= r0+10 })
	if n := handled.Load(); n != 0 || ms[0].Status().State != fstaid.StateArmed {
		t.Fatalf("handler ran %d times (mon0 %s) after ten rounds with only one dead verdict of k=2", n, ms[0].Status().State)
	}
	vs, err := stores[1].Votes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, v := range vs {
		if v.Dead() {
			dead++
			if v.Monitor != "mon0" {
				t.Errorf("verdict %+v: only mon0 sees the target dead", v)
			}
		}
	}
	if len(vs) != 3 || dead != 1 {
		t.Fatalf("verdicts %+v: want 3, one dead", vs)
	}

	// The target really dies: mon1 and mon2 see it too.
	views[1].dead.Store(true)
	views[2].dead.Store(true)
	var errs []error
	select {
	case errs = <-result:
	case <-time.After(15 * time.Second):
		t.Fatal("no failover within 15s of the target dying")
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("handler ran %d times across three monitors, want 1 (results %v)", n, errs)
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

// Two monitors whose rounds are out of phase (k = 2 of 2, the target
// dead for both) confirm each other's dead verdict under the verdict TTL
// derived from their round timing (WithRoundTiming); a TTL shorter than
// interval + round bound, with which they would never see each other's
// verdict, is refused.
func TestQuorumOutOfPhaseDerivedTTL(t *testing.T) {
	srv := startEtcd(t)
	const interval = 4 * time.Second
	down := &target{}
	down.dead.Store(true)
	build := func(id string, ttl ...Option) (*Store, *fstaid.Monitor, error) {
		c := newClient(t, endpoints(srv)...)
		// The Monitor's RoundBound does not depend on the Store: ask a
		// Monitor built with the same checks.
		probe, err := fstaid.New(fstaid.WithPrimary(down.check(), time.Second), fstaid.WithMaxAttempts(1),
			fstaid.WithSecondary(fstaid.CheckFunc(func(context.Context) error { return nil }), 2*time.Second),
			fstaid.WithInterval(interval), fstaid.WithLock(fstaid.NewFileLock(t.TempDir()+"/lock")), fstaid.WithLogger(nil),
			fstaid.WithHandler("none", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), time.Second))
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStore(c, "/phase", append([]Option{WithMonitorID(id), WithLogger(nil), WithRoundTiming(interval, probe.RoundBound())}, ttl...)...)
		if err != nil {
			return nil, nil, err
		}
		t.Cleanup(func() { s.Close() })
		v := s.Votes()
		m, err := fstaid.New(fstaid.WithPrimary(down.check(), time.Second), fstaid.WithMaxAttempts(1),
			fstaid.WithSecondary(v.Quorum(2), 2*time.Second), fstaid.WithObserver(v.Observer()),
			fstaid.WithInterval(interval), fstaid.WithLock(s.Lock()), fstaid.WithLogger(nil),
			fstaid.WithStartupCheck(fstaid.StartupCheckOff),
			fstaid.WithHandler("move-ip", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return s, m, nil
	}
	if _, _, err := build("short", WithVoteTTL(time.Second)); err == nil || !strings.Contains(err.Error(), "verdict TTL 1s is below interval 4s") {
		t.Fatalf("NewStore with a 1s verdict TTL and 4s rounds = %v, want it refused", err)
	}
	a, ma, err := build("a")
	if err != nil {
		t.Fatal(err)
	}
	_, mb, err := build("b")
	if err != nil {
		t.Fatal(err)
	}
	if a.VoteTTL() < MinVoteTTL(interval, ma.RoundBound()) {
		t.Fatalf("derived verdict TTL %v < interval %v + round bound %v", a.VoteTTL(), interval, ma.RoundBound())
	}
	ctx := ctxTimeout(t, 40*time.Second)
	errs := make(chan error, 2)
	go func() { errs <- ma.Run(ctx) }()
	time.Sleep(interval / 2) // b's rounds fall between a's
	go func() { errs <- mb.Run(ctx) }()
	var failedOver, locked int
	for range 2 {
		select {
		case err := <-errs:
			switch {
			case errors.Is(err, fstaid.ErrFailedOver):
				failedOver++
			case errors.Is(err, fstaid.ErrLocked):
				locked++
			default:
				t.Errorf("Run = %v", err)
			}
		case <-ctx.Done():
			t.Fatal("no failover: the out-of-phase monitors never confirmed each other")
		}
	}
	if failedOver != 1 || locked != 1 {
		t.Fatalf("%d failovers, %d locked; want one each", failedOver, locked)
	}
}
