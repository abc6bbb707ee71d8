package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fstaid/fstaid"
)

// The detection config: what the theory is computed from.
const (
	detectInterval = 200 * time.Millisecond
	detectAttempts = 3
	detectPause    = 20 * time.Millisecond
	detectTimeout  = time.Second
)

var detectSeq atomic.Int64

type detectSample struct {
	detection time.Duration // target death → handler start
	theory    time.Duration // target death → the schedule's handler start
	lock      time.Duration // the lock's durable write (inside the excess)
}

func (s detectSample) excess() time.Duration { return s.detection - s.theory }

// detect kills a loopback target at a random phase, cfg.samples times per
// check kind, and compares target death → handler start with the theory:
// the next scheduled round start after the death plus the pauses between
// attempts. The round's schedule comes from the Monitor's own notices
// (Round.Start is the scheduled start), so a late round counts as excess.
func detect(ctx context.Context, cfg *config) error {
	kinds := []struct {
		name  string
		check func(url, addr string) fstaid.Check
	}{
		{"native HTTP", func(u, _ string) fstaid.Check { return fstaid.HTTP(u) }},
		{"native TCP", func(_, a string) fstaid.Check { return fstaid.TCP(a) }},
	}
	if _, err := exec.LookPath("curl"); err == nil {
		kinds = append(kinds, struct {
			name  string
			check func(url, addr string) fstaid.Check
		}{"Command(curl)", func(u, _ string) fstaid.Check {
			c := fstaid.Command("curl -s -f -o /dev/null " + u)
			c.LogStdout = false
			return c
		}})
	}
	w := cfg.out
	fmt.Fprintf(w, "\n## 1. Detection: target death → handler start\n\n")
	fmt.Fprintf(w, "Library in process, loopback HTTP target closed at a random phase; interval %v, max attempts %d, attempt interval %v, check timeout %v, FileLock on disk. "+
		"Theory = next scheduled round start after the death + (attempts−1) × attempt interval. Excess = measured − theory, per sample; it includes the checks' own time and the lock's durable write (shown too).\n\n",
		detectInterval, detectAttempts, detectPause, detectTimeout)
	fmt.Fprintf(w, "| check | N | death→handler p50 / p99 ms | theory p50 / p99 ms | excess p50 / p99 ms | lock write p50 / p99 ms | excess beyond lock p50 / p99 ms |\n|---|---|---|---|---|---|---|\n")
	for _, k := range kinds {
		var ss []detectSample
		for i := 0; i < cfg.samples && ctx.Err() == nil; i++ {
			s, err := detectOnce(ctx, cfg, k.check, i)
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			ss = append(ss, s)
		}
		var det, th, ex, lk, beyond []time.Duration
		for _, s := range ss {
			det, th, ex, lk, beyond = append(det, s.detection), append(th, s.theory), append(ex, s.excess()), append(lk, s.lock), append(beyond, s.excess()-s.lock)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", k.name, len(ss), p50p99(det), p50p99(th), p50p99(ex), p50p99(lk), p50p99(beyond))
	}
	return nil
}

func detectOnce(ctx context.Context, cfg *config, mk func(url, addr string) fstaid.Check, i int) (detectSample, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return detectSample{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	started := make(chan time.Time, 1)
	armed := make(chan struct{})
	var mu sync.Mutex
	var lastHealthy time.Time
	lock := &timedLock{Lock: fstaid.NewFileLock(filepath.Join(cfg.workDir, "detect-"+strconv.Itoa(int(detectSeq.Add(1)))+".lock"))}
	m, err := fstaid.New(
		fstaid.WithPrimary(mk("http://"+addr+"/", addr), detectTimeout),
		fstaid.WithInterval(detectInterval),
		fstaid.WithMaxAttempts(detectAttempts),
		fstaid.WithAttemptInterval(detectPause),
		fstaid.WithHandler("stamp", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error {
			started <- time.Now()
			return nil
		}), time.Second),
		fstaid.WithLock(lock),
		// A real logger, writing nowhere: its formatting cost counts.
		fstaid.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		fstaid.WithObserver(func(n fstaid.Notice) {
			switch {
			case n.Kind == fstaid.NoticeArmed:
				close(armed)
			case n.Kind == fstaid.NoticeRound && n.Round.Verdict == fstaid.VerdictHealthy:
				mu.Lock()
				lastHealthy = n.Round.Start
				mu.Unlock()
			}
		}),
	)
	if err != nil {
		return detectSample{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	select {
	case <-armed:
	case err := <-done:
		return detectSample{}, fmt.Errorf("monitor stopped before arming: %v", err)
	}
	// At least one healthy round, then a random phase within an interval.
	time.Sleep(detectInterval + time.Duration(rand.Int64N(int64(detectInterval))))
	death := time.Now()
	srv.Close()
	var hs time.Time
	select {
	case hs = <-started:
	case <-rctx.Done():
		return detectSample{}, fmt.Errorf("no failover within 30s")
	}
	<-done
	mu.Lock()
	theory := lastHealthy.Add(detectInterval + (detectAttempts-1)*detectPause)
	mu.Unlock()
	return detectSample{detection: hs.Sub(death), theory: theory.Sub(death), lock: lock.acquire}, nil
}
