package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fstaid/fstaid"
)

// pct is the q-quantile of ds (nearest rank); ds is sorted in place.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1 // nearest rank
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// p50p99 formats "p50 / p99" in milliseconds.
func p50p99(ds []time.Duration) string {
	c := slices.Clone(ds)
	return ms(pct(c, 0.50)) + " / " + ms(pct(c, 0.99))
}

// procStatus reads VmRSS and VmHWM of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	m, err := procMem(pid)
	return m["VmRSS"], m["VmHWM"], err
}

// procMem reads the memory lines of /proc/pid/status, in bytes: VmRSS,
// VmHWM, RssAnon (heap, stacks), RssFile (the binary's pages).
func procMem(pid int) (map[string]int64, error) {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || !strings.HasSuffix(v, "kB") {
			continue
		}
		n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		out[k] = n << 10
	}
	return out, s.Err()
}

// procCPU is the user+system CPU of pid and of the children it reaped
// (a command check's curl), from /proc/pid/stat (10 ms ticks).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// selfCPU is this process's user+system CPU (getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memLock is an in-memory failover lock for in-process measurements.
type memLock struct {
	mu  sync.Mutex
	rec *fstaid.Record
}

func (l *memLock) Load(context.Context) (*fstaid.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec, nil
}

func (l *memLock) Acquire(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec != nil {
		return &fstaid.LockedError{Lock: "memory", Record: l.rec}
	}
	l.rec = rec
	return nil
}

func (l *memLock) Update(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec = rec
	return nil
}

func (l *memLock) Done() <-chan struct{} { return nil }

// timedLock times Acquire, the durable write, of the lock it wraps.
type timedLock struct {
	fstaid.Lock
	acquire time.Duration
}

func (l *timedLock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	start := time.Now()
	err := l.Lock.Acquire(ctx, rec)
	l.acquire = time.Since(start)
	return err
}

// Probe and Persistent pass through, so the Monitor treats the wrapped
// FileLock as it would the bare one.
func (l *timedLock) Probe(ctx context.Context) error {
	if p, ok := l.Lock.(fstaid.LockProber); ok {
		return p.Probe(ctx)
	}
	return nil
}
