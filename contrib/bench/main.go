// Command bench measures fstaid's speed and cost, as issue 6 asks, and
// prints the results as Markdown tables:
//
//  1. detect: a loopback target dies at a random phase; target death →
//     handler start, next to the schedule's theory, for native HTTP,
//     native TCP and Command("curl ...") checks (library, in process);
//  2. manual: POST /fail → handler start on the real fstaidd binary, the
//     lock's durable write reported separately;
//  3. footprint: the real fstaidd watching one target: RSS after minutes
//     at interval 1s, RSS and heap at 10k vs 50k rounds at 10 ms, CPU per
//     round for native HTTP, native TCP and curl checks; original: the
//     same with the original fstaid's configuration (curl self, primary
//     and secondary checks), VmRSS, RssAnon, RssFile and PSS by mapping,
//     beside the original's figures (issue 17);
//  4. scale: N Monitors in one process (TCP checks, interval 1s) for
//     N = 100, 1,000, 10,000: CPU share, RSS, round-start lag;
//  5. coldstart: fstaidd exec → READY=1 on NOTIFY_SOCKET.
//
// Run it from the repository root:
//
//	go run ./contrib/bench            # the published figures (about 15 minutes)
//	go run ./contrib/bench -quick     # the same measurements, shorter (about 2 minutes)
//	go run ./contrib/bench -only scale,detect
//
// Only 127.0.0.1 is used. Every process it starts is stopped by its PID
// before it returns, and every phase is bounded in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	quick   bool
	only    map[string]bool
	samples int           // detection and manual failover samples
	rssRun  time.Duration // footprint at interval 1s
	rounds  int           // footprint rounds at 10 ms (flatness)
	cpuRuns int           // rounds per check kind for CPU per round
	scaleNs []int
	scaleW  time.Duration // scale measurement window
	// original: fstaidd with an original-format config (issue 17)
	origRuns int
	origWait time.Duration
	bin      string // a prebuilt fstaidd, or "" to build one
	workDir  string
	out      io.Writer
}

func main() {
	if child := os.Getenv(childEnv); child != "" {
		os.Exit(runChild(child))
	}
	var (
		quick  = flag.Bool("quick", false, "shorter runs (same measurements, fewer samples and rounds)")
		only   = flag.String("only", "", "comma-separated subset: detect,manual,footprint,original,scale,coldstart (default all; manual and coldstart share their runs)")
		n      = flag.Int("n", 0, "samples for detect and manual (default 50; 30 with -quick)")
		rssMin = flag.Float64("rss-minutes", 0, "footprint run at interval 1s, minutes (default 10; 1 with -quick)")
		rounds = flag.Int("rounds", 0, "footprint rounds at 10 ms for the flatness check (default 50000; 5000 with -quick)")
		scale  = flag.String("scale", "100,1000,10000", "monitor counts for the scale measurement")
		binF   = flag.String("bin", "", "measure this fstaidd binary instead of building one from the tree (a before/after comparison)")
		oRuns  = flag.Int("orig-runs", 2, "original: fresh daemons per variant, one after the other")
		oSecs  = flag.Float64("orig-seconds", 60, "original: seconds of healthy monitoring before the reading")
	)
	flag.Parse()
	cfg := &config{quick: *quick, only: map[string]bool{}, out: os.Stdout, bin: *binF}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.only[s] = true
		}
	}
	cfg.samples, cfg.rssRun, cfg.rounds, cfg.cpuRuns, cfg.scaleW = 50, 10*time.Minute, 50000, 3000, 30*time.Second
	if *quick {
		cfg.samples, cfg.rssRun, cfg.rounds, cfg.cpuRuns, cfg.scaleW = 30, time.Minute, 5000, 800, 10*time.Second
	}
	if *n > 0 {
		cfg.samples = *n
	}
	if *rssMin > 0 {
		cfg.rssRun = time.Duration(*rssMin * float64(time.Minute))
	}
	cfg.origRuns, cfg.origWait = *oRuns, time.Duration(*oSecs*float64(time.Second))
	if *rounds > 0 {
		cfg.rounds = *rounds
	}
	for _, s := range strings.Split(*scale, ",") {
		var v int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &v); err == nil && v > 0 {
			cfg.scaleNs = append(cfg.scaleNs, v)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg)
	stop()
	killAll()
	os.Exit(code)
}

func (c *config) want(name string) bool { return len(c.only) == 0 || c.only[name] }

func run(ctx context.Context, cfg *config) int {
	raiseNoFile()
	// The lock directory must be on a real disk: on tmpfs fsync is free
	// and the lock write would look cheaper than it is.
	dir, err := os.MkdirTemp("/var/tmp", "fstaid-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg.workDir = dir

	printMachine(cfg.out, cfg)
	var bin string
	if cfg.want("manual") || cfg.want("coldstart") || cfg.want("footprint") || cfg.want("original") {
		bin, err = cfg.bin, nil
		if bin == "" {
			bin, err = buildDaemon(ctx, dir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "building fstaidd:", err)
			return 1
		}
	}
	failed := false
	report := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Fprintf(cfg.out, "\n**%s failed: %v**\n", name, err)
		}
	}

	// The long footprint run at interval 1s goes in the background from
	// the start: it costs one check a second, and the rest runs meanwhile.
	var bg sync.WaitGroup
	var rssReport string
	var rssErr error
	if cfg.want("footprint") {
		bg.Add(1)
		go func() {
			defer bg.Done()
			rssReport, rssErr = footprintOneSecond(ctx, cfg, bin)
		}()
	}
	if cfg.want("detect") && ctx.Err() == nil {
		report("detect", detect(ctx, cfg))
	}
	if (cfg.want("manual") || cfg.want("coldstart")) && ctx.Err() == nil {
		report("manual", manualAndColdStart(ctx, cfg, bin))
	}
	if cfg.want("scale") && ctx.Err() == nil {
		report("scale", scaleAll(ctx, cfg))
	}
	if cfg.want("footprint") && ctx.Err() == nil {
		report("footprint", footprintRounds(ctx, cfg, bin))
	}
	if cfg.want("original") && ctx.Err() == nil {
		report("original", footprintOriginal(ctx, cfg, bin))
	}
	if cfg.want("footprint") {
		fmt.Fprintf(os.Stderr, "waiting for the %v footprint run at interval 1s\n", cfg.rssRun)
		bg.Wait()
		fmt.Fprint(cfg.out, rssReport)
		report("footprint at 1s", rssErr)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(cfg.out, "\n**interrupted**")
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func printMachine(w io.Writer, cfg *config) {
	fmt.Fprintf(w, "# fstaid benchmarks\n\n")
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "- date: %s\n- mode: %s\n- go: %s %s/%s, GOMAXPROCS %d\n", time.Now().UTC().Format(time.RFC3339), mode,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if b, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Model name:") || strings.HasPrefix(l, "CPU(s):") {
				fmt.Fprintf(w, "- %s\n", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Fprintf(w, "- %s\n", strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0]), " "))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(w, "- load average at start: %s\n", strings.Join(strings.Fields(string(b))[:3], " "))
	}
}

// buildDaemon builds fstaidd once from the working tree, the way
// contrib/deb/build.sh does (static, -trimpath, stripped, grpcnotrace), so
// the footprint measured is the packaged binary's.
func buildDaemon(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fstaidd")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", bin, "./contrib/fstaidd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return bin, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory: run from the repository")
		}
		dir = parent
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit: 10,000
// monitors hold up to 10,000 connections at once.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// Processes started by the tool, stopped by PID on the way out.
var (
	procMu sync.Mutex
	procs  = map[int]*exec.Cmd{}
)

func track(cmd *exec.Cmd) {
	procMu.Lock()
	procs[cmd.Process.Pid] = cmd
	procMu.Unlock()
}

func untrack(cmd *exec.Cmd) {
	procMu.Lock()
	delete(procs, cmd.Process.Pid)
	procMu.Unlock()
}

// stopProc sends SIGTERM, then SIGKILL after grace, and reaps it.
func stopProc(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
	untrack(cmd)
}

func killAll() {
	procMu.Lock()
	defer procMu.Unlock()
	for pid, cmd := range procs {
		cmd.Process.Kill()
		delete(procs, pid)
	}
}
