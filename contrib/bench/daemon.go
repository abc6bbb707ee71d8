package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fstaid/fstaid"
)

// daemonProc is one real fstaidd process.
type daemonProc struct {
	cmd    *exec.Cmd
	dir    string
	port   int
	notify *net.UnixConn
	done   chan struct{}
	exit   int
	ready  time.Duration // exec → READY=1
}

// daemonSpec is what one run of fstaidd watches.
type daemonSpec struct {
	interval string // seconds, as the config writes them
	primary  string // the [primary] check line: http = ..., tcp = ... or command = ...
	env      []string
	// config, when set, writes the whole configuration instead (the
	// original-format measurement): port, lock directory, handler script.
	config func(port int, lockDir, handler string) string
}

// freePort asks the kernel for a free loopback port. (The daemon binds it
// a moment later; a collision fails the run loudly, it cannot mislead.)
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// handlerScript writes a bash handler whose first act is to write its
// start time ($EPOCHREALTIME, µs) to stampPath.
func handlerScript(dir string) (script, stamp string, err error) {
	script, stamp = filepath.Join(dir, "handler.sh"), filepath.Join(dir, "handler.start")
	body := "#!/bin/bash\nt=$EPOCHREALTIME\necho \"$t\" > " + stamp + "\n"
	return script, stamp, os.WriteFile(script, []byte(body), 0o755)
}

// startDaemon starts fstaidd in a fresh directory and waits for READY=1.
func startDaemon(ctx context.Context, bin, dir string, spec daemonSpec) (*daemonProc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "lock"), 0o755); err != nil {
		return nil, err
	}
	script, _, err := handlerScript(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`[global]
port = %d
interval = %s
maxattempts = 3
attempt_interval = 0
lockdir = %q
mode = "release"
target = "bench"

[handler]
command = %q
timeout = 30

[primary]
%s
timeout = 1
`, port, spec.interval, filepath.Join(dir, "lock"), script, spec.primary)
	if spec.config != nil {
		conf = spec.config(port, filepath.Join(dir, "lock"), script)
	}
	confPath := filepath.Join(dir, "fstaidd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "n.sock")
	na, err := net.ResolveUnixAddr("unixgram", sock)
	if err != nil {
		return nil, err
	}
	nc, err := net.ListenUnixgram("unixgram", na)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "fstaidd.log"))
	if err != nil {
		nc.Close()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-config", confPath)
	cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="+sock), spec.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	d := &daemonProc{cmd: cmd, dir: dir, port: port, notify: nc, done: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		nc.Close()
		return nil, err
	}
	track(cmd)
	go func() {
		cmd.Wait()
		d.exit = cmd.ProcessState.ExitCode()
		untrack(cmd)
		close(d.done)
	}()
	buf := make([]byte, 4096)
	nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		n, err := nc.Read(buf)
		if err != nil {
			d.stop()
			return nil, fmt.Errorf("waiting for READY=1: %w (log: %s)", err, tail(filepath.Join(dir, "fstaidd.log")))
		}
		if hasLine(string(buf[:n]), "READY=1") {
			d.ready = time.Since(start)
			break
		}
	}
	nc.SetReadDeadline(time.Time{})
	// Keep draining STATUS= datagrams so the daemon never blocks on them.
	go func() {
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	return d, nil
}

func hasLine(msg, line string) bool {
	for _, l := range strings.Split(msg, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends the daemon by PID (SIGTERM, then SIGKILL) and waits for it.
func (d *daemonProc) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	d.notify.Close()
}

func (d *daemonProc) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(d.port) + path
}

type daemonStatus struct {
	State  string `json:"state"`
	Rounds uint64 `json:"rounds"`
}

var httpc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

func (d *daemonProc) status() (daemonStatus, error) {
	var st daemonStatus
	resp, err := httpc.Get(d.url("/status"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitState polls /status until pred holds or timeout passes.
func (d *daemonProc) waitStatus(ctx context.Context, timeout, every time.Duration, pred func(daemonStatus) bool) (daemonStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := d.status()
		if err == nil && pred(st) {
			return st, nil
		}
		select {
		case <-d.done:
			return st, fmt.Errorf("fstaidd exited with status %d: %s", d.exit, tail(filepath.Join(d.dir, "fstaidd.log")))
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(every):
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("timed out; last status %+v, err %v", st, err)
		}
	}
}

// metric reads one unlabelled sample from /metrics.
func (d *daemonProc) metrics(names ...string) (map[string]float64, error) {
	resp, err := httpc.Get(d.url("/metrics"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 2 && want[f[0]] {
			out[f[0]], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	return out, s.Err()
}

// loopbackTarget is an HTTP target on 127.0.0.1 in this process.
type loopbackTarget struct {
	addr string
	srv  *http.Server
}

func newTarget() (*loopbackTarget, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	return &loopbackTarget{addr: ln.Addr().String(), srv: srv}, nil
}

func (t *loopbackTarget) url() string { return "http://" + t.addr + "/" }

// manualAndColdStart starts the real fstaidd cfg.samples times; each
// start gives one cold-start sample (exec → READY=1) and, once armed, one
// manual failover (POST /fail → the handler script's first line).
func manualAndColdStart(ctx context.Context, cfg *config, bin string) error {
	tgt, err := newTarget()
	if err != nil {
		return err
	}
	defer tgt.srv.Close()
	var ready, armed, total, lockSeg, beyond, preLock, postLock []time.Duration
	for i := 0; i < cfg.samples && ctx.Err() == nil; i++ {
		dir := filepath.Join(cfg.workDir, "manual-"+strconv.Itoa(i))
		d, err := startDaemon(ctx, bin, dir, daemonSpec{interval: "1", primary: fmt.Sprintf("tcp = %q", tgt.addr)})
		if err != nil {
			return err
		}
		ready = append(ready, d.ready)
		t0 := time.Now()
		if _, err := d.waitStatus(ctx, 15*time.Second, 2*time.Millisecond, func(s daemonStatus) bool { return s.State == "armed" }); err != nil {
			d.stop()
			return err
		}
		armed = append(armed, d.ready+time.Since(t0))
		if !cfg.want("manual") {
			d.stop()
			continue
		}
		// Let the start-up burst settle, at a random phase of the schedule.
		time.Sleep(200*time.Millisecond + time.Duration(i%10)*97*time.Millisecond)
		post := time.Now()
		resp, err := httpc.Post(d.url("/fail"), "", nil)
		if err != nil {
			d.stop()
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			d.stop()
			return fmt.Errorf("POST /fail: %s", resp.Status)
		}
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			d.stop()
			return errors.New("fstaidd did not exit after the failover")
		}
		d.notify.Close()
		if d.exit != 10 {
			return fmt.Errorf("fstaidd exit status %d after a failover, want 10", d.exit)
		}
		stampB, err := os.ReadFile(filepath.Join(dir, "handler.start"))
		if err != nil {
			return err
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(strings.ReplaceAll(string(stampB), ",", ".")), 64)
		if err != nil {
			return fmt.Errorf("handler stamp %q: %w", stampB, err)
		}
		handlerStart := time.Unix(0, int64(secs*1e6)*1e3)
		recB, err := os.ReadFile(filepath.Join(dir, "lock", "fstaid."+strconv.Itoa(d.port)+".lock"))
		if err != nil {
			return err
		}
		var rec fstaid.Record
		if err := json.Unmarshal(recB, &rec); err != nil || len(rec.Handlers) == 0 {
			return fmt.Errorf("failover record: %v %s", err, recB)
		}
		// rec.Time: the record is made, just before the lock is taken;
		// Handlers[0].Start: the lock is written, the handler begins.
		lockWrite := rec.Handlers[0].Start.Sub(rec.Time)
		tot := handlerStart.Sub(post)
		total, lockSeg, beyond = append(total, tot), append(lockSeg, lockWrite), append(beyond, tot-lockWrite)
		preLock = append(preLock, rec.Time.Sub(post))
		postLock = append(postLock, handlerStart.Sub(rec.Handlers[0].Start))
	}
	// The same bash handler started directly: the exec cost inside "after".
	var exec []time.Duration
	for i := 0; i < cfg.samples && cfg.want("manual"); i++ {
		d, err := bashExecCost(filepath.Join(cfg.workDir, "manual-0"))
		if err != nil {
			return err
		}
		exec = append(exec, d)
	}
	w := cfg.out
	if cfg.want("manual") {
		fmt.Fprintf(w, "\n## 2. Manual failover: POST /fail → handler start (real fstaidd)\n\n")
		fmt.Fprintf(w, "fstaidd built once from this tree; one fresh daemon per sample (armed, TCP primary check, interval 1s), FileLock in a directory on disk (/var/tmp). "+
			"Handler start = the first line of a bash handler script (`$EPOCHREALTIME`). The lock segment is read from the failover record: "+
			"Record.Time (the record is made, just before the durable write) → Handlers[0].Start (the handler is about to be executed).\n\n")
		fmt.Fprintf(w, "| segment | N | p50 / p99 ms |\n|---|---|---|\n")
		fmt.Fprintf(w, "| POST /fail → handler start (total) | %d | %s |\n", len(total), p50p99(total))
		fmt.Fprintf(w, "| lock's durable write (temp file, fsync, link, dir fsync) | %d | %s |\n", len(lockSeg), p50p99(lockSeg))
		fmt.Fprintf(w, "| **total beyond the lock write** | %d | **%s** |\n", len(beyond), p50p99(beyond))
		fmt.Fprintf(w, "| of which: POST → record made (HTTP, auth, Fail) | %d | %s |\n", len(preLock), p50p99(preLock))
		fmt.Fprintf(w, "| of which: lock written → script's first line (fork, exec bash) | %d | %s |\n", len(postLock), p50p99(postLock))
		fmt.Fprintf(w, "| for comparison: the same script started directly by Go (exec → first line) | %d | %s |\n", len(exec), p50p99(exec))
	}
	if cfg.want("coldstart") {
		fmt.Fprintf(w, "\n## 5. Cold start: fstaidd exec → READY=1\n\n")
		fmt.Fprintf(w, "exec of the built binary → READY=1 datagram read on a unixgram NOTIFY_SOCKET the tool binds. fstaidd sends READY=1 once its endpoint serves, before the start-up check, "+
			"so the checks' own time is excluded by construction; exec → armed (start-up check passed, one loopback TCP check) is shown for comparison, polled every 2 ms.\n\n")
		fmt.Fprintf(w, "| | N | p50 / p99 ms |\n|---|---|---|\n")
		fmt.Fprintf(w, "| exec → READY=1 | %d | %s |\n", len(ready), p50p99(ready))
		fmt.Fprintf(w, "| exec → armed (polled) | %d | %s |\n", len(armed), p50p99(armed))
	}
	return nil
}

// bashExecCost starts the handler script from Go and returns start → its
// first line.
func bashExecCost(dir string) (time.Duration, error) {
	script, stamp, err := handlerScript(dir)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := exec.Command(script).Run(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(stamp)
	if err != nil {
		return 0, err
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0, err
	}
	return time.Unix(0, int64(secs*1e6)*1e3).Sub(start), nil
}

// footprintOneSecond runs fstaidd at interval 1s with a native HTTP
// check for cfg.rssRun and reports its RSS over time.
func footprintOneSecond(ctx context.Context, cfg *config, bin string) (string, error) {
	tgt, err := newTarget()
	if err != nil {
		return "", err
	}
	defer tgt.srv.Close()
	d, err := startDaemon(ctx, bin, filepath.Join(cfg.workDir, "rss-1s"), daemonSpec{interval: "1", primary: fmt.Sprintf("http = %q", tgt.url())})
	if err != nil {
		return "", err
	}
	defer d.stop()
	pid := d.cmd.Process.Pid
	type point struct {
		at                   time.Duration
		rss, hwm, anon, file int64
		rounds               uint64
		heap                 float64
	}
	var pts []point
	marks := []time.Duration{10 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute}
	start := time.Now()
	cpu0, _ := procCPU(pid)
	for _, mk := range marks {
		if mk > cfg.rssRun {
			mk = cfg.rssRun
		}
		if len(pts) > 0 && pts[len(pts)-1].at >= mk {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-d.done:
			return "", fmt.Errorf("fstaidd exited (%d): %s", d.exit, tail(filepath.Join(d.dir, "fstaidd.log")))
		case <-time.After(time.Until(start.Add(mk))):
		}
		pm, err := procMem(pid)
		if err != nil {
			return "", err
		}
		st, _ := d.status()
		m, _ := d.metrics("go_memstats_heap_alloc_bytes")
		pts = append(pts, point{mk, pm["VmRSS"], pm["VmHWM"], pm["RssAnon"], pm["RssFile"], st.Rounds, m["go_memstats_heap_alloc_bytes"]})
	}
	cpu1, _ := procCPU(pid)
	var b strings.Builder
	fmt.Fprintf(&b, "\n### 3a. fstaidd RSS at interval 1s, one native HTTP check (loopback)\n\n")
	fmt.Fprintf(&b, "RssAnon is the process's own memory (Go heap, stacks, runtime); RssFile is the pages of the %s fstaidd binary mapped in (shared, clean, evictable).\n\n", binSize(bin))
	fmt.Fprintf(&b, "| after | rounds | VmRSS MiB | RssAnon MiB | RssFile MiB | VmHWM MiB | Go heap alloc MiB |\n|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		fmt.Fprintf(&b, "| %v | %d | %s | %s | %s | %s | %s |\n", p.at, p.rounds, mib(p.rss), mib(p.anon), mib(p.file), mib(p.hwm), mib(int64(p.heap)))
	}
	if last := pts[len(pts)-1]; last.rounds > 0 {
		el := last.at
		fmt.Fprintf(&b, "\nCPU over the run: %v for %d rounds = %.3f %% of one core (includes /status and /metrics polls at each mark).\n",
			cpu1-cpu0, last.rounds, 100*float64(cpu1-cpu0)/float64(el))
	}
	return b.String(), nil
}

// footprintRounds runs fstaidd at a 10 ms interval: RSS and heap must be
// flat between 10k and 50k rounds (native HTTP), and CPU per round for
// each check kind.
func footprintRounds(ctx context.Context, cfg *config, bin string) error {
	tgt, err := newTarget()
	if err != nil {
		return err
	}
	defer tgt.srv.Close()
	w := cfg.out
	fmt.Fprintf(w, "\n## 3. Footprint of fstaidd watching one target\n\n")
	// CPU per round, each kind.
	type kind struct {
		name, primary string
		env           []string
	}
	kinds := []kind{
		{"native HTTP", fmt.Sprintf("http = %q", tgt.url()), nil},
		{"native TCP", fmt.Sprintf("tcp = %q", tgt.addr), nil},
	}
	if _, err := exec.LookPath("curl"); err == nil {
		kinds = append(kinds, kind{"Command(curl)", fmt.Sprintf("command = %q", "curl -s -f -o /dev/null "+tgt.url()), nil})
	}
	// The same with one P: how much of a round is the runtime's idle
	// and wake-up work on two cores.
	kinds = append(kinds, kind{"native HTTP, GOMAXPROCS=1", fmt.Sprintf("http = %q", tgt.url()), []string{"GOMAXPROCS=1"}},
		kind{"native TCP, GOMAXPROCS=1", fmt.Sprintf("tcp = %q", tgt.addr), []string{"GOMAXPROCS=1"}})
	fmt.Fprintf(w, "### 3b. CPU per round at interval 10 ms\n\nfstaidd's user+system CPU including reaped children (curl), from /proc/PID/stat, over rounds %d→%d after a warm-up; the target runs in the bench process and is not counted.\n\n", 200, 200+cfg.cpuRuns)
	fmt.Fprintf(w, "| check | rounds | CPU µs/round | × native HTTP |\n|---|---|---|---|\n")
	var httpCost float64
	for _, k := range kinds {
		perRound, n, err := cpuPerRound(ctx, cfg, bin, k.name, daemonSpec{interval: "0.01", primary: k.primary, env: k.env}, 200, 200+cfg.cpuRuns)
		if err != nil {
			return err
		}
		if httpCost == 0 {
			httpCost = perRound
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f |\n", k.name, n, perRound, perRound/httpCost)
	}

	// Flatness: native HTTP for cfg.rounds rounds.
	d, err := startDaemon(ctx, bin, filepath.Join(cfg.workDir, "rounds"), daemonSpec{interval: "0.01", primary: fmt.Sprintf("http = %q", tgt.url())})
	if err != nil {
		return err
	}
	defer d.stop()
	pid := d.cmd.Process.Pid
	type point struct {
		rounds          uint64
		rss, anon       int64
		heap, inuse, gr float64
		cpu             time.Duration
	}
	var pts []point
	var marks []uint64
	for _, f := range []float64{0.02, 0.2, 0.4, 0.6, 0.8, 1} {
		marks = append(marks, uint64(f*float64(cfg.rounds)))
	}
	// Bound: the rounds at 10 ms, twice over, plus a minute.
	bound := 2*time.Duration(cfg.rounds)*10*time.Millisecond + time.Minute
	start := time.Now()
	for _, mk := range marks {
		st, err := d.waitStatus(ctx, bound-time.Since(start), 100*time.Millisecond, func(s daemonStatus) bool { return s.Rounds >= mk })
		if err != nil {
			return fmt.Errorf("waiting for round %d: %w", mk, err)
		}
		pm, _ := procMem(pid)
		m, _ := d.metrics("go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_goroutines")
		cpu, _ := procCPU(pid)
		pts = append(pts, point{st.Rounds, pm["VmRSS"], pm["RssAnon"], m["go_memstats_heap_alloc_bytes"], m["go_memstats_heap_inuse_bytes"], m["go_goroutines"], cpu})
	}
	fmt.Fprintf(w, "\n### 3c. Flatness: native HTTP check at interval 10 ms, %d rounds\n\n", cfg.rounds)
	fmt.Fprintf(w, "| rounds | VmRSS MiB | RssAnon MiB | Go heap alloc MiB | heap in use MiB | goroutines | CPU µs/round since previous row |\n|---|---|---|---|---|---|---|\n")
	for i, p := range pts {
		per := "—"
		if i > 0 && p.rounds > pts[i-1].rounds {
			per = fmt.Sprintf("%.0f", float64(p.cpu-pts[i-1].cpu)/float64(p.rounds-pts[i-1].rounds)/1e3)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.0f | %s |\n", p.rounds, mib(p.rss), mib(p.anon), mib(int64(p.heap)), mib(int64(p.inuse)), p.gr, per)
	}
	var at10 *point
	for i := range pts {
		if pts[i].rounds >= uint64(cfg.rounds)/5 {
			at10 = &pts[i]
			break
		}
	}
	if last := pts[len(pts)-1]; at10 != nil {
		fmt.Fprintf(w, "\nFrom round %d to %d: VmRSS %+.1f MiB, RssAnon %+.1f MiB, heap in use %+.2f MiB.\n", at10.rounds, last.rounds,
			float64(last.rss-at10.rss)/(1<<20), float64(last.anon-at10.anon)/(1<<20), (last.inuse-at10.inuse)/(1<<20))
	}
	return nil
}

// cpuPerRound runs one daemon at 10 ms and returns its CPU per round
// between rounds from and to, in µs.
func cpuPerRound(ctx context.Context, cfg *config, bin, name string, spec daemonSpec, from, to int) (float64, int, error) {
	dir := filepath.Join(cfg.workDir, "cpu-"+strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "", "=", "").Replace(name))
	d, err := startDaemon(ctx, bin, dir, spec)
	if err != nil {
		return 0, 0, err
	}
	defer d.stop()
	pid := d.cmd.Process.Pid
	bound := 2*time.Duration(to)*10*time.Millisecond + time.Minute
	st0, err := d.waitStatus(ctx, bound, 20*time.Millisecond, func(s daemonStatus) bool { return s.Rounds >= uint64(from) })
	if err != nil {
		return 0, 0, err
	}
	c0, _ := procCPU(pid)
	// Poll rarely: each /status costs the daemon CPU too.
	st1, err := d.waitStatus(ctx, bound, 500*time.Millisecond, func(s daemonStatus) bool { return s.Rounds >= uint64(to) })
	if err != nil {
		return 0, 0, err
	}
	c1, _ := procCPU(pid)
	n := int(st1.Rounds - st0.Rounds)
	return float64(c1-c0) / float64(n) / 1e3, n, nil
}

func binSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return mib(fi.Size()) + " MiB"
}
