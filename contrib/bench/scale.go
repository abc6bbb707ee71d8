package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fstaid/fstaid"
)

// childEnv switches the binary into one of its child roles: "target"
// (loopback TCP listeners that accept and close) or "scale" (N Monitors).
const childEnv = "FSTAID_BENCH_CHILD"

const scaleListeners = 32

type scaleResult struct {
	N          int     `json:"n"`
	Window     float64 `json:"window_s"`
	CPU        float64 `json:"cpu_s"`
	RSS        int64   `json:"rss"`
	HeapInuse  uint64  `json:"heap_inuse"`
	Goroutines int     `json:"goroutines"`
	Rounds     int     `json:"rounds"`
	LagP50     float64 `json:"lag_p50_ms"`
	LagP99     float64 `json:"lag_p99_ms"`
	LagMax     float64 `json:"lag_max_ms"`
	Failed     int64   `json:"failed_checks"`
	StartTime  float64 `json:"start_s"`
}

func runChild(role string) int {
	raiseNoFile()
	switch role {
	case "target":
		return childTarget()
	case "scale":
		return childScale()
	}
	fmt.Fprintln(os.Stderr, "unknown child role", role)
	return 2
}

// childTarget listens on scaleListeners loopback ports, accepts and
// closes, and exits when its stdin closes (the parent is gone).
func childTarget() int {
	var addrs []string
	for range scaleListeners {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		addrs = append(addrs, l.Addr().String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					time.Sleep(time.Millisecond) // EMFILE: back off
					continue
				}
				c.Close()
			}
		}()
	}
	fmt.Println(strings.Join(addrs, ","))
	var b [1]byte
	os.Stdin.Read(b[:]) // returns when the parent closes the pipe or dies
	return 0
}

// probe wraps a check and records when the Monitor actually started it.
type probe struct {
	check fstaid.Check
	last  atomic.Int64
	fail  *atomic.Int64
}

func (p *probe) Check(ctx context.Context) error {
	p.last.Store(time.Now().UnixNano())
	err := p.check.Check(ctx)
	if err != nil && p.fail.Add(1) <= 3 {
		fmt.Fprintln(os.Stderr, "scale: check failed:", err)
	}
	return err
}

// childScale runs N Monitors with TCP checks, interval 1s, started at
// random phases, and measures a window after a warm-up.
func childScale() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_N"))
	addrs := strings.Split(os.Getenv("BENCH_ADDRS"), ",")
	warmup, _ := time.ParseDuration(os.Getenv("BENCH_WARMUP"))
	window, _ := time.ParseDuration(os.Getenv("BENCH_WINDOW"))

	var measuring atomic.Bool
	var failed atomic.Int64
	lags := make([][]int32, n) // µs, one slice per monitor (its observer's goroutine)
	ms := make([]*fstaid.Monitor, n)
	handler := fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil })
	for i := range n {
		p := &probe{check: fstaid.TCP(addrs[i%len(addrs)]), fail: &failed}
		m, err := fstaid.New(
			fstaid.WithPrimary(p, time.Second),
			fstaid.WithInterval(time.Second),
			fstaid.WithHandler("noop", handler, time.Second),
			fstaid.WithLock(&memLock{}),
			fstaid.WithLogger(nil),
			fstaid.WithObserver(func(ev fstaid.Notice) {
				if ev.Kind != fstaid.NoticeRound || ev.Round == nil || ev.Round.Startup || !measuring.Load() {
					return
				}
				lags[i] = append(lags[i], int32((p.last.Load()-ev.Round.Start.UnixNano())/1e3))
			}),
		)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ms[i] = m
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, m := range ms {
		wg.Add(1)
		// Random phases within the first interval, as independent
		// monitors would have.
		delay := time.Duration(rand.Int64N(int64(time.Second)))
		go func() {
			defer wg.Done()
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			if err := m.Run(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "monitor %d: %v\n", i, err)
			}
		}()
	}
	time.Sleep(warmup)
	runtime.GC()
	measuring.Store(true)
	failed.Store(0)
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	c0, w0 := selfCPU(), time.Now()
	time.Sleep(window)
	pprof.StopCPUProfile()
	measuring.Store(false)
	c1, w1 := selfCPU(), time.Now()
	rss, _, _ := procStatus(os.Getpid())
	var mst runtime.MemStats
	runtime.ReadMemStats(&mst)
	gr := runtime.NumGoroutine()
	failedInWindow := failed.Load()
	if path := os.Getenv("BENCH_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	cancel()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "monitors did not stop within 20s")
	}
	var all []time.Duration
	for _, l := range lags {
		for _, us := range l {
			all = append(all, time.Duration(us)*time.Microsecond)
		}
	}
	res := scaleResult{N: n, Window: w1.Sub(w0).Seconds(), CPU: (c1 - c0).Seconds(), RSS: rss, HeapInuse: mst.HeapInuse,
		Goroutines: gr, Rounds: len(all), Failed: failedInWindow, StartTime: w0.Sub(t0).Seconds()}
	res.LagP50 = float64(pct(all, 0.5)) / 1e6
	res.LagP99 = float64(pct(all, 0.99)) / 1e6
	res.LagMax = float64(pct(all, 1)) / 1e6
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// scaleAll runs the scale child for each N against one target child.
func scaleAll(ctx context.Context, cfg *config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tc := exec.Command(self)
	tc.Env = append(os.Environ(), childEnv+"=target")
	stdin, err := tc.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := tc.StdoutPipe()
	if err != nil {
		return err
	}
	tc.Stderr = os.Stderr
	if err := tc.Start(); err != nil {
		return err
	}
	track(tc)
	defer func() {
		stdin.Close()
		stopProc(tc, 5*time.Second)
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("target child: %w", err)
	}
	addrs := strings.TrimSpace(line)

	warmup := 5 * time.Second
	if cfg.quick {
		warmup = 3 * time.Second
	}
	var results []scaleResult
	for _, n := range cfg.scaleNs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(os.Stderr, "scale: %d monitors\n", n)
		sc := exec.Command(self)
		sc.Env = append(os.Environ(), childEnv+"=scale", "BENCH_N="+strconv.Itoa(n), "BENCH_ADDRS="+addrs,
			"BENCH_WARMUP="+warmup.String(), "BENCH_WINDOW="+cfg.scaleW.String())
		sc.Stderr = os.Stderr
		out, err := sc.StdoutPipe()
		if err != nil {
			return err
		}
		if err := sc.Start(); err != nil {
			return err
		}
		track(sc)
		var res scaleResult
		decoded := make(chan error, 1)
		go func() { decoded <- json.NewDecoder(out).Decode(&res) }()
		bound := warmup + cfg.scaleW + time.Minute
		select {
		case err = <-decoded:
		case <-time.After(bound):
			err = fmt.Errorf("scale child for N=%d did not finish within %v", n, bound)
		case <-ctx.Done():
			err = ctx.Err()
		}
		stopProc(sc, 25*time.Second)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	w := cfg.out
	fmt.Fprintf(w, "\n## 4. Library scale: N Monitors in one process\n\n")
	fmt.Fprintf(w, "One process, N Monitors with native TCP checks (timeout 1s) against %d loopback listeners in a separate process (its CPU not counted), interval 1s, started at random phases; "+
		"warm-up %v, then a %v window. CPU from getrusage; RSS = VmRSS at the window's end. Lag = the check's actual start (a CheckFunc-style wrapper recording time.Now()) − Round.Start (the scheduled start, from the observer notice).\n\n",
		scaleListeners, warmup, cfg.scaleW)
	fmt.Fprintf(w, "| N | rounds in window | CPU %% of one core | CPU µs/round | RSS MiB | KiB/monitor | heap in use MiB | goroutines | lag p50 ms | lag p99 ms | lag max ms | failed checks |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(w, "| %d | %d | %.1f | %.0f | %s | %.1f | %s | %d | %.2f | %.2f | %.2f | %d |\n",
			r.N, r.Rounds, 100*r.CPU/r.Window, r.CPU*1e6/float64(max(r.Rounds, 1)), mib(r.RSS), float64(r.RSS)/1024/float64(r.N),
			mib(int64(r.HeapInuse)), r.Goroutines, r.LagP50, r.LagP99, r.LagMax, r.Failed)
	}
	return nil
}
