package fstaid_test

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// Benchmarks report figures with b.ReportMetric; they assert nothing
// about time (the machines are shared and noisy).

// percentiles reports p50 and p99 of ds under name.
func percentiles(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), name+"-p50-ms")
	b.ReportMetric(p(0.99), name+"-p99-ms")
}

// timedLock measures Acquire (the durable write) of the lock it wraps.
type timedLock struct {
	fstaid.Lock
	mu       sync.Mutex
	acquires []time.Duration
}

func (l *timedLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	start := time.Now()
	err := l.Lock.Acquire(ctx, rec)
	l.mu.Lock()
	l.acquires = append(l.acquires, time.Since(start))
	l.mu.Unlock()
	return err
}

// tcpTarget is a loopback listener that can die.
func tcpTarget(b *testing.B) (addr string, kill func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String(), func() { l.Close() }
}

// BenchmarkScheduleToHandler kills a loopback target at a random phase
// and measures the handler's start against the schedule's theory: the
// first round scheduled after the death, plus the pauses between
// attempts. The excess is timer wake-up, the checks' own time, and the
// lock (in memory here; see BenchmarkFailToHandler for the disk).
func BenchmarkScheduleToHandler(b *testing.B) {
	const (
		interval = 20 * time.Millisecond
		attempts = 2
		pause    = 5 * time.Millisecond
	)
	var excess, detection []time.Duration
	for b.Loop() {
		addr, kill := tcpTarget(b)
		started := make(chan time.Time, 1)
		var roundStart time.Time
		h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			started <- time.Now()
			roundStart = ev.RoundStart
			return nil
		})
		armed := make(chan struct{})
		m, err := fstaid.New(fstaid.WithPrimary(fstaid.TCP(addr), time.Second), fstaid.WithInterval(interval),
			fstaid.WithMaxAttempts(attempts), fstaid.WithAttemptInterval(pause),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(&memLock{}), fstaid.WithLogger(nil),
			fstaid.WithObserver(func(n fstaid.Notice) {
				if n.Kind == fstaid.NoticeArmed {
					close(armed)
				}
			}))
		if err != nil {
			b.Fatal(err)
		}
		done := runAsync(context.Background(), m)
		<-armed
		time.Sleep(time.Duration(rand.Int64N(int64(3 * interval))))
		death := time.Now()
		kill()
		handlerStart := <-started
		<-done
		theory := roundStart.Add((attempts - 1) * pause)
		excess = append(excess, handlerStart.Sub(theory))
		detection = append(detection, handlerStart.Sub(death))
	}
	percentiles(b, "excess", excess)
	percentiles(b, "death-to-handler", detection)
}

// cpuTime is the user+system CPU of this process and its reaped children.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// BenchmarkCheckCPU measures the CPU one check costs (the in-process
// target's share included, the same for each kind): native HTTP, native
// TCP, and forking curl as the original's configs do.
func BenchmarkCheckCPU(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	checks := []struct {
		name  string
		check fstaid.Check
	}{
		{"http", fstaid.HTTP(srv.URL)},
		{"tcp", fstaid.TCP(srv.Listener.Addr().String())},
	}
	if _, err := exec.LookPath("curl"); err == nil {
		c := fstaid.Command("curl -s -f -o /dev/null " + srv.URL)
		c.LogStdout = false
		checks = append(checks, struct {
			name  string
			check fstaid.Check
		}{"command-curl", c})
	}
	for _, c := range checks {
		b.Run(c.name, func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if err := c.check.Check(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1000, "cpu-µs/check")
		})
	}
}

// BenchmarkFailToHandler measures Fail → handler start, with the lock's
// durable write (temp file, fsync, link, directory fsync) reported
// separately from the rest.
func BenchmarkFailToHandler(b *testing.B) {
	dir := b.TempDir()
	var total, beyond []time.Duration
	var lock *timedLock
	var acquires []time.Duration
	i := 0
	for b.Loop() {
		i++
		lock = &timedLock{Lock: fstaid.NewFileLock(filepath.Join(dir, "lock-"+strconv.Itoa(i)))}
		var handlerStart time.Time
		h := fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error {
			handlerStart = time.Now()
			return nil
		})
		m, err := fstaid.New(fstaid.WithPrimary(fstaid.TCP("127.0.0.1:1"), time.Second),
			fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(lock), fstaid.WithLogger(nil))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := m.Fail(context.Background()); err != nil {
			b.Fatal(err)
		}
		d := handlerStart.Sub(start)
		total = append(total, d)
		beyond = append(beyond, d-lock.acquires[0])
		acquires = append(acquires, lock.acquires[0])
	}
	percentiles(b, "fail-to-handler", total)
	percentiles(b, "lock-write", acquires)
	percentiles(b, "beyond-lock", beyond)
}

// BenchmarkRound measures one monitoring round of a running Monitor: its
// allocations (allocs/op, B/op), its CPU (cpu-µs/round) and the
// goroutines it starts (goroutines/round), the loopback target's share
// included for the network kinds (the HTTP server starts one goroutine
// per connection; the TCP target none). Rounds run back to
// back (interval 1ns), so the timer wake-up between rounds is in it too.
// "func" is a CheckFunc that passes: the round's own machinery alone.
//
//	go test -run '^$' -bench BenchmarkRound -benchtime 20000x
func BenchmarkRound(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	tcpAddr, kill := tcpTarget(b) // accepts and closes
	defer kill()
	kinds := []struct {
		name  string
		check fstaid.Check
	}{
		{"func", fstaid.CheckFunc(func(context.Context) error { return nil })},
		{"tcp", fstaid.TCP(tcpAddr)},
		{"http", fstaid.HTTP(srv.URL)},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var rounds int
			armed := make(chan struct{})
			m, err := fstaid.New(fstaid.WithPrimary(k.check, time.Second), fstaid.WithInterval(time.Nanosecond),
				fstaid.WithHandler("h", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), time.Second),
				fstaid.WithLock(&memLock{}), fstaid.WithLogger(nil),
				fstaid.WithObserver(func(n fstaid.Notice) {
					switch n.Kind {
					case fstaid.NoticeArmed:
						close(armed)
					case fstaid.NoticeRound:
						if rounds++; rounds == b.N {
							cancel()
						}
					}
				}))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			start, created := cpuTime(), goroutinesCreated()
			b.ResetTimer()
			if err := m.Run(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			<-armed
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1000, "cpu-µs/round")
			b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/round")
		})
	}
}

// BenchmarkMonitorFootprint measures what a running, idle Monitor costs:
// live heap bytes, goroutine stacks and goroutines per Monitor, 1,000 of them after their
// first round (CheckFunc checks, interval 1h, so none runs meanwhile).
//
//	go test -run '^$' -bench BenchmarkMonitorFootprint -benchtime 1x
func BenchmarkMonitorFootprint(b *testing.B) {
	const n = 1000
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap0, stack0, gr0 := ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
		var rounds sync.WaitGroup
		rounds.Add(n)
		var done []<-chan error
		for range n {
			var once sync.Once
			m, err := fstaid.New(fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return nil }), time.Second),
				fstaid.WithInterval(time.Hour), fstaid.WithStartupCheck(fstaid.StartupCheckOff),
				fstaid.WithHandler("h", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), time.Second),
				fstaid.WithLock(&memLock{}), fstaid.WithLogger(nil),
				fstaid.WithObserver(func(n fstaid.Notice) {
					if n.Kind == fstaid.NoticeRound {
						once.Do(rounds.Done)
					}
				}))
			if err != nil {
				b.Fatal(err)
			}
			done = append(done, runAsync(ctx, m))
		}
		rounds.Wait()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(heap0))/n, "heap-B/monitor")
		b.ReportMetric(float64(int64(ms.StackInuse)-int64(stack0))/n, "stack-B/monitor")
		b.ReportMetric(float64(runtime.NumGoroutine()-gr0)/n, "goroutines/monitor")
		cancel()
		for _, d := range done {
			<-d
		}
	}
}

// goroutinesCreated is the number of goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
