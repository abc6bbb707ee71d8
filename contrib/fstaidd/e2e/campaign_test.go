package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The seeded fault campaign (issue 14): a nemesis, driven by one seed,
// draws a schedule of faults against real fstaidd processes, a real
// three-member etcd and the target, on the etcd LAN (etcdnet_test.go);
// every event goes into one history, and a checker verifies the
// promise on it. A failing schedule prints its seed; replay it with
//
//	go test -count=1 -run 'TestCampaign/etcd' ./contrib/fstaidd/e2e/ -campaign.seed=N
//
// and soak with -campaign.runs=N (schedules per mode).
var (
	campaignSeed = flag.String("campaign.seed", "", "replay the schedules of these seeds, comma-separated (empty: draw seeds)")
	campaignRuns = flag.Int("campaign.runs", 0, "schedules per mode (0: the short campaign CI runs)")
	campaignBase = flag.Uint64("campaign.base", 1, "first seed (0: from the clock); CI runs the fixed seeds from 1, so that a red run replays")
)

// campaignShort is the number of schedules per mode CI runs.
const campaignShort = 8

// campaignMode is one way of deploying monitors.
type campaignMode struct {
	name     string
	monitors []string
	etcd     bool
	quorum   int
}

var campaignModes = []campaignMode{
	{name: "file", monitors: []string{"m1"}},
	{name: "etcd", monitors: etcdMonitors, etcd: true},
	{name: "quorum", monitors: etcdMonitors, etcd: true, quorum: 2},
}

// Timing of one schedule.
const (
	chaosFor   = 4 * time.Second  // faults are drawn in [0, chaosFor)
	settleFor  = 20 * time.Second // the bound: a failover begins within it
	restartSec = 300 * time.Millisecond
)

func TestCampaign(t *testing.T) {
	needHarness(t)
	n := newEtcdNet(t)
	for _, mode := range campaignModes {
		t.Run(mode.name, func(t *testing.T) {
			seeds := campaignSeeds()
			for _, seed := range seeds {
				ok := t.Run(fmt.Sprint(seed), func(t *testing.T) {
					newSchedule(t, n, mode, seed).run()
				})
				if !ok {
					t.Errorf("schedule %s/%d failed: replay with -run 'TestCampaign/%s/%d' -campaign.seed=%d",
						mode.name, seed, mode.name, seed, seed)
				}
			}
		})
	}
}

// campaignSeeds returns the seeds to run: the one to replay, or fresh
// ones.
func campaignSeeds() []uint64 {
	if *campaignSeed != "" {
		var seeds []uint64
		for _, f := range strings.Split(*campaignSeed, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				panic(fmt.Sprintf("-campaign.seed: %q is not a seed", f))
			}
			seeds = append(seeds, n)
		}
		return seeds
	}
	runs := *campaignRuns
	if runs <= 0 {
		runs = campaignShort
	}
	base := *campaignBase
	if base == 0 {
		base = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	seeds := make([]uint64, runs)
	for i := range seeds {
		seeds[i] = base + uint64(i)
	}
	return seeds
}

// fault is one step of the nemesis: at offset at, do; undo (if set) at
// at+d, or at the heal if that is sooner.
type fault struct {
	at   time.Duration
	d    time.Duration
	what string
	do   func()
	undo func()
}

// histEvent is one line of the history.
type histEvent struct {
	at   time.Duration
	what string
}

// sample is one GET /status of a monitor, from sent to got.
type sample struct {
	m         string
	sent, got time.Time
	pid       int
	state     string
	deadline  time.Time
}

// schedule is one seeded run.
type schedule struct {
	t    *testing.T
	n    *etcdNet
	mode campaignMode
	seed uint64
	rng  *rand.Rand
	s    *scenario
	// prefix is this schedule's etcd prefix: every schedule starts
	// without a record.
	prefix string
	// lockDir is m1's lock directory in file mode: a small tmpfs.
	lockDir string
	start   time.Time

	mu      sync.Mutex
	hist    []histEvent
	daemons map[string]*daemon
	// down holds the monitor processes the nemesis stopped on purpose
	// (SIGTERM): the supervisor leaves them until the heal.
	down map[string]*daemon
	// killedAt is when the nemesis SIGKILLed each monitor.
	killedAt map[string][]time.Time
	// exits lists each monitor's exit statuses, in order.
	exits map[string][]int
	// manual reports that a POST /fail was sent.
	manual bool
	// targetDied reports that the target was made to fail, flap, hang
	// or lose its link at some point.
	targetDied bool
	// stopped etcd members and monitors, to SIGCONT at the heal.
	stoppedProcs map[*proc]bool
	// etcdDown are members killed and not yet restarted.
	etcdDown map[string]bool
	cuts     map[string]bool
	routes   [][2]string
	// samples are every monitor's states, polled through the schedule.
	samples []sample
}

func newSchedule(t *testing.T, n *etcdNet, mode campaignMode, seed uint64) *schedule {
	sc := &schedule{
		t: t, n: n, mode: mode, seed: seed,
		rng:          rand.New(rand.NewPCG(seed, uint64(len(mode.name)))),
		s:            newScenario(t),
		prefix:       fmt.Sprintf("/fstaid/campaign/%s/%d", mode.name, seed),
		daemons:      map[string]*daemon{},
		down:         map[string]*daemon{},
		killedAt:     map[string][]time.Time{},
		exits:        map[string][]int{},
		stoppedProcs: map[*proc]bool{},
		etcdDown:     map[string]bool{},
		cuts:         map[string]bool{},
	}
	n.s = sc.s
	return sc
}

func (sc *schedule) log(format string, args ...any) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.hist = append(sc.hist, histEvent{time.Since(sc.start), fmt.Sprintf(format, args...)})
}

func (sc *schedule) history() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var b strings.Builder
	for _, e := range sc.hist {
		fmt.Fprintf(&b, "  %8.3fs %s\n", e.at.Seconds(), e.what)
	}
	return b.String()
}

// config writes monitor m's configuration for this schedule.
func (sc *schedule) config(m string) string {
	t := sc.t
	dir := filepath.Join(sc.s.dir, m)
	lockDir := filepath.Join(dir, "lock")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if m == "m1" && !sc.mode.etcd {
		sc.lockDir = lockDir
		// A small file system of its own, so that the nemesis can fill
		// it or make it read-only.
		run(t, "mount", "-t", "tmpfs", "-o", "size=64k", "fstaid-campaign", lockDir)
		t.Cleanup(func() { exec.Command("umount", "-l", lockDir).Run() })
	}
	etcd := ""
	if sc.mode.etcd {
		var eps []string
		for _, e := range etcdMembers {
			eps = append(eps, strconv.Quote("http://"+etcdHostIP[e]+":2379"))
		}
		etcd = fmt.Sprintf("\n[etcd]\nendpoints = [%s]\nprefix = %q\ndial_timeout = 1\nmonitor_id = %q\nholder_ttl = 2\n",
			strings.Join(eps, ", "), sc.prefix, m)
		if sc.mode.quorum > 0 {
			etcd += fmt.Sprintf("quorum = %d\n", sc.mode.quorum)
		}
	}
	cfg := fmt.Sprintf(`[global]
port = %s
interval = 0.2
maxattempts = 2
attempt_interval = 0.1
lockdir = %q
mode = "release"

[handler]
command = %q
timeout = 20

[primary]
http = "http://%s/"
timeout = 0.5
%s
[[user]]
userid = %q
password = %q
`, daemonPort, lockDir, sc.s.handler, etcdTargetIP, etcd, authUser, authPass)
	path := filepath.Join(dir, "fstaidd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startMonitor starts (or restarts) fstaidd on host m.
func (sc *schedule) startMonitor(m string) {
	d := startDaemonEnv(sc.t, m, filepath.Join(sc.s.dir, m, "fstaidd.toml"), []string{"FSTAID_E2E_MONITOR=" + m})
	sc.mu.Lock()
	sc.daemons[m] = d
	sc.mu.Unlock()
	sc.log("start %s (pid %d)", m, d.cmd.Process.Pid)
}

func (sc *schedule) daemon(m string) *daemon {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.daemons[m]
}

// supervise restarts monitors as systemd's Restart=on-failure with
// RestartPreventExitStatus=10 11 12 78 would, until stop is closed.
func (sc *schedule) supervise(stop <-chan struct{}) {
	seen := map[*proc]bool{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for _, m := range sc.mode.monitors {
			d := sc.daemon(m)
			if d == nil || !d.exited() || seen[d.proc] {
				continue
			}
			seen[d.proc] = true
			sc.mu.Lock()
			sc.exits[m] = append(sc.exits[m], d.code)
			held := sc.down[m] == d
			sc.mu.Unlock()
			sc.log("%s exited %d", m, d.code)
			if held || !restartable(d.code) {
				continue
			}
			time.Sleep(restartSec)
			sc.mu.Lock()
			held = sc.down[m] == d
			sc.mu.Unlock()
			if !held {
				sc.startMonitor(m)
			}
		}
	}
}

// poll records every monitor's /status every 100 ms until stop is
// closed: the states and deadlines of the history.
func (sc *schedule) poll(stop <-chan struct{}) {
	var wg sync.WaitGroup
	for _, m := range sc.mode.monitors {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				d := sc.daemon(m)
				if d == nil || d.exited() {
					continue
				}
				sent := time.Now()
				st, err := d.status()
				if err != nil {
					continue
				}
				sc.mu.Lock()
				sc.samples = append(sc.samples, sample{m: m, sent: sent, got: time.Now(), pid: st.PID, state: st.State, deadline: st.Deadline})
				sc.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// restartable reports whether systemd restarts a unit that exited with
// code (-1: killed by a signal).
func restartable(code int) bool {
	switch code {
	case 0, 10, 11, 12, 78:
		return false
	}
	return true
}

// drawFaults draws the nemesis's schedule.
func (sc *schedule) drawFaults() []fault {
	r := sc.rng
	var fs []fault
	dur := func() time.Duration { return time.Duration(200+r.IntN(2300)) * time.Millisecond }
	at := func() time.Duration { return time.Duration(r.Int64N(int64(chaosFor))) }
	pickMonitor := func() string { return sc.mode.monitors[r.IntN(len(sc.mode.monitors))] }
	hosts := append([]string{"tgt"}, sc.mode.monitors...)
	if sc.mode.etcd {
		hosts = append(hosts, etcdMembers...)
	}
	for range 2 + r.IntN(6) {
		f := fault{at: at(), d: dur()}
		switch k := r.IntN(12); {
		case k == 0:
			m := pickMonitor()
			f.what = "SIGKILL " + m
			f.do = func() { sc.kill(m) }
		case k == 1:
			m := pickMonitor()
			f.what = "SIGSTOP " + m
			var p *proc
			f.do = func() { p = sc.stopProc(sc.daemon(m).proc) }
			f.undo = func() { sc.contProc(p) }
		case k == 2:
			m := pickMonitor()
			f.what = "SIGTERM " + m + ", restart later"
			f.do = func() {
				d := sc.daemon(m)
				if d.exited() {
					return // already down; the supervisor has it
				}
				sc.mu.Lock()
				sc.down[m] = d
				sc.mu.Unlock()
				d.signal(syscall.SIGTERM)
			}
			f.undo = func() { sc.restartIfDown(m, false) }
		case k == 3 && sc.mode.etcd:
			e := etcdMembers[r.IntN(len(etcdMembers))]
			f.what = "SIGKILL etcd " + e + ", restart later"
			f.do = func() { sc.killEtcd(e) }
			f.undo = func() { sc.restartEtcd(e) }
		case k == 4 && sc.mode.etcd:
			e := etcdMembers[r.IntN(len(etcdMembers))]
			f.what = "SIGSTOP etcd " + e
			var p *proc
			f.do = func() { p = sc.stopProc(sc.n.members[e]) }
			f.undo = func() { sc.contProc(p) }
		case k == 5:
			h := hosts[r.IntN(len(hosts))]
			f.what = "cut " + h
			f.do = func() { sc.cut(h, true) }
			f.undo = func() { sc.cut(h, false) }
		case k == 6:
			a, b := hosts[r.IntN(len(hosts))], hosts[r.IntN(len(hosts))]
			if a == b {
				continue
			}
			f.what = "partition " + a + " | " + b
			f.do = func() { sc.partition(a, b, true) }
			f.undo = func() { sc.partition(a, b, false) }
		case k == 7:
			f.what = "target dies"
			f.do = func() { sc.setTarget("fail") }
			if r.IntN(2) == 0 {
				f.what += ", recovers"
				f.undo = func() { sc.setTarget("ok") }
			}
		case k == 8:
			f.what = "target flaps"
			f.do = func() { sc.setTarget("flap=" + strconv.Itoa(2+r.IntN(3))) }
			f.undo = func() { sc.setTarget("ok") }
		case k == 9:
			f.what = "target hangs"
			f.do = func() { sc.setTarget("slow=10s") }
			f.undo = func() { sc.setTarget("ok") }
		case k == 10:
			clients := 2 + r.IntN(3)
			f.what = fmt.Sprintf("POST /fail from %d clients", clients)
			targets := make([]string, clients)
			for i := range targets {
				targets[i] = pickMonitor()
			}
			f.do = func() { sc.manualFail(targets) }
		case k == 11 && !sc.mode.etcd:
			if r.IntN(2) == 0 {
				f.what = "lock directory full"
				f.do = func() { sc.fillLockDir(true) }
				f.undo = func() { sc.fillLockDir(false) }
			} else {
				f.what = "lock directory read-only"
				f.do = func() { sc.readOnlyLockDir(true) }
				f.undo = func() { sc.readOnlyLockDir(false) }
			}
		default:
			continue
		}
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b fault) int { return int(a.at - b.at) })
	return fs
}

func (sc *schedule) kill(m string) {
	d := sc.daemon(m)
	if d.exited() {
		return
	}
	sc.mu.Lock()
	sc.killedAt[m] = append(sc.killedAt[m], time.Now())
	sc.mu.Unlock()
	d.signal(syscall.SIGKILL)
}

func (sc *schedule) stopProc(p *proc) *proc {
	if p == nil || p.exited() {
		return nil
	}
	p.signal(syscall.SIGSTOP)
	sc.mu.Lock()
	sc.stoppedProcs[p] = true
	sc.mu.Unlock()
	return p
}

func (sc *schedule) contProc(p *proc) {
	if p == nil {
		return
	}
	sc.mu.Lock()
	delete(sc.stoppedProcs, p)
	sc.mu.Unlock()
	p.signal(syscall.SIGCONT)
}

// restartIfDown restarts a monitor the nemesis SIGTERMed, once it has
// exited. Without wait, one still running (finishing a failover, or
// stopped by another fault) is left for the heal, which waits: the
// nemesis never blocks on it, since what it waits for may need a fault
// undone first (a full lock directory, a SIGSTOP).
func (sc *schedule) restartIfDown(m string, wait bool) {
	sc.mu.Lock()
	d := sc.down[m]
	if d != nil && !wait && !d.exited() {
		sc.mu.Unlock()
		return
	}
	delete(sc.down, m)
	sc.mu.Unlock()
	if d == nil {
		return
	}
	// SIGTERM during a failover lets it finish: up to the handler's
	// timeout (20 s), and the record's update.
	select {
	case <-d.done:
	case <-time.After(45 * time.Second):
		sc.t.Errorf("%s did not stop within 45 s of SIGTERM", m)
		return
	}
	// The operator's restart; also after a SIGKILL that came between
	// (the supervisor left it alone while it was held down).
	if sc.daemon(m) == d && (d.code == 0 || restartable(d.code)) {
		sc.startMonitor(m)
	}
}

func (sc *schedule) killEtcd(e string) {
	p := sc.n.members[e]
	if p.exited() {
		return
	}
	sc.mu.Lock()
	sc.etcdDown[e] = true
	sc.mu.Unlock()
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (sc *schedule) restartEtcd(e string) {
	sc.mu.Lock()
	down := sc.etcdDown[e]
	delete(sc.etcdDown, e)
	sc.mu.Unlock()
	if !down {
		return
	}
	n := sc.n
	var cluster []string
	for _, m := range etcdMembers {
		cluster = append(cluster, m+"=http://"+etcdHostIP[m]+":2380")
	}
	ready := filepath.Join(n.dir, e+".ready")
	os.Remove(ready)
	// Owned by the whole campaign (n.t), not this schedule: the member
	// serves the schedules after it too.
	p := startProc(n.t, "etcd-"+e, e, filepath.Join(n.dir, e+".log"), []string{envRole + "=etcd"},
		selfBin, e, etcdHostIP[e], filepath.Join(n.dir, e+".etcd"), strings.Join(cluster, ","), ready)
	n.members[e] = p
	sc.log("etcd %s restarted (pid %d)", e, p.cmd.Process.Pid)
}

func (sc *schedule) cut(h string, down bool) {
	state := "up"
	if down {
		state = "down"
	}
	sc.mu.Lock()
	sc.cuts[h] = down
	if h == "tgt" && down {
		sc.targetDied = true // unreachable from every vantage point
	}
	sc.mu.Unlock()
	exec.Command("ip", "-n", h, "link", "set", "eth0", state).Run()
}

func (sc *schedule) partition(a, b string, on bool) {
	op := "del"
	if on {
		op = "add"
		sc.mu.Lock()
		sc.routes = append(sc.routes, [2]string{a, b})
		sc.mu.Unlock()
	}
	exec.Command("ip", "-n", a, "route", op, "blackhole", etcdHostIP[b]+"/32").Run()
	exec.Command("ip", "-n", b, "route", op, "blackhole", etcdHostIP[a]+"/32").Run()
}

func (sc *schedule) setTarget(mode string) {
	if mode != "ok" {
		// Failing, flapping or hanging: some checks rightly fail.
		sc.mu.Lock()
		sc.targetDied = true
		sc.mu.Unlock()
	}
	os.WriteFile(filepath.Join(sc.n.targetCtrl, "mode"), []byte(mode), 0o644)
}

func (sc *schedule) manualFail(targets []string) {
	sc.mu.Lock()
	sc.manual = true
	sc.mu.Unlock()
	var wg sync.WaitGroup
	for i, m := range targets {
		d := sc.daemon(m)
		wg.Go(func() {
			code, body, err := d.request("POST", "/fail")
			if len(body) > 200 {
				body = body[:200]
			}
			sc.log("POST /fail #%d to %s: %d %v %s", i, m, code, err, strings.TrimSpace(string(body)))
		})
	}
	// Not waited for: a failover holds its request until it ends.
	go wg.Wait()
}

func (sc *schedule) fillLockDir(full bool) {
	filler := filepath.Join(sc.lockDir, ".filler")
	if !full {
		os.Remove(filler)
		return
	}
	f, err := os.Create(filler)
	if err != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
}

func (sc *schedule) readOnlyLockDir(ro bool) {
	opt := "remount,rw"
	if ro {
		opt = "remount,ro"
	}
	exec.Command("mount", "-o", opt, sc.lockDir).Run()
}

// heal undoes every fault still in force.
func (sc *schedule) heal(pending []fault) {
	// Stopped processes go on first: a pending restart waits for a
	// monitor to exit, which a stopped one never does.
	sc.mu.Lock()
	frozen := slices.Collect(maps.Keys(sc.stoppedProcs))
	sc.mu.Unlock()
	for _, p := range frozen {
		sc.contProc(p)
	}
	for _, f := range pending {
		if f.undo != nil {
			f.undo()
		}
	}
	sc.mu.Lock()
	etcdDown := slices.Collect(maps.Keys(sc.etcdDown))
	var cuts []string
	for h, c := range sc.cuts {
		if c {
			cuts = append(cuts, h)
		}
	}
	routes := sc.routes
	sc.routes = nil
	down := slices.Collect(maps.Keys(sc.down))
	sc.mu.Unlock()
	for _, e := range etcdDown {
		sc.restartEtcd(e)
	}
	for _, h := range cuts {
		sc.cut(h, false)
	}
	for _, r := range routes {
		sc.partition(r[0], r[1], false)
	}
	if sc.lockDir != "" {
		sc.readOnlyLockDir(false)
		sc.fillLockDir(false)
		// A monitor that found its lock directory read-only at start-up
		// exited 78 (an operator must act): the operator, having fixed
		// the mount, starts it again.
		if d := sc.daemon("m1"); d != nil && d.exited() && d.code == 78 {
			sc.log("operator restarts m1 after fixing the lock directory")
			sc.startMonitor("m1")
		}
	}
	// Last, with every fault undone: a SIGTERMed monitor may have been
	// finishing a failover that needed one of them.
	for _, m := range down {
		sc.restartIfDown(m, true)
	}
	if sc.mode.etcd {
		for _, e := range etcdMembers {
			p := sc.n.members[e]
			waitFor(sc.t, 30*time.Second, "etcd "+e+" to serve again", func() bool {
				_, err := os.Stat(filepath.Join(sc.n.dir, e+".ready"))
				return err == nil || p.exited()
			})
		}
	}
	sc.log("healed")
}

// recordState reads the failover record: its state and whether one
// exists; for etcd also whether it is interrupted (no live holder).
func (sc *schedule) recordState() (exists bool, state string, interrupted bool) {
	if !sc.mode.etcd {
		b, err := os.ReadFile(filepath.Join(sc.lockDir, "fstaid."+daemonPort+".lock"))
		if err != nil {
			return false, "", false
		}
		var r record
		json.Unmarshal(b, &r)
		return true, r.State, false
	}
	for _, m := range sc.mode.monitors {
		out, _ := fstaiddToolIn(sc.t, m, "status", "-json", "-config", filepath.Join(sc.s.dir, m, "fstaidd.toml"))
		var view struct {
			Etcd *etcdStatus `json:"etcd"`
		}
		if json.NewDecoder(strings.NewReader(out)).Decode(&view) != nil || view.Etcd == nil {
			continue
		}
		st := view.Etcd
		if st.Record == nil {
			return false, "", false
		}
		return true, st.Record.State, st.Interrupted
	}
	sc.t.Fatalf("no monitor host could read the etcd record")
	return false, "", false
}

// liveStates returns the /status state of every monitor that runs.
func (sc *schedule) liveStates() map[string]string {
	states := map[string]string{}
	for _, m := range sc.mode.monitors {
		d := sc.daemon(m)
		if d == nil || d.exited() {
			continue
		}
		st, err := d.status()
		if err != nil {
			states[m] = "unreachable: " + err.Error()
			continue
		}
		states[m] = st.State
	}
	return states
}

func (sc *schedule) run() {
	t := sc.t
	sc.s.writeHandler(time.Duration(sc.rng.IntN(2000))*time.Millisecond, 0)
	sc.setTarget("ok")
	for _, m := range sc.mode.monitors {
		sc.config(m)
	}
	sc.start = time.Now()
	for _, m := range sc.mode.monitors {
		sc.startMonitor(m)
	}
	for _, m := range sc.mode.monitors {
		d := sc.daemon(m)
		d.waitReady()
		d.waitStatus(20*time.Second, m+" armed", func(st *status) bool { return st.State == "armed" })
	}
	stop := make(chan struct{})
	supervised := make(chan struct{})
	go func() { defer close(supervised); sc.supervise(stop) }()
	polled := make(chan struct{})
	go func() { defer close(polled); sc.poll(stop) }()
	defer func() {
		close(stop)
		<-supervised
		<-polled
		// The whole history with -v, and always for a failing schedule.
		t.Logf("seed %d, mode %s; history:\n%s", sc.seed, sc.mode.name, sc.history())
	}()

	// Chaos: the drawn faults, each undone after its duration unless the
	// heal comes first.
	faults := sc.drawFaults()
	chaosStart := time.Now()
	type timed struct {
		at time.Duration
		f  *fault
		do bool
	}
	var steps []timed
	for i := range faults {
		f := &faults[i]
		steps = append(steps, timed{f.at, f, true})
		if f.undo != nil && f.at+f.d < chaosFor {
			steps = append(steps, timed{f.at + f.d, f, false})
		}
	}
	slices.SortStableFunc(steps, func(a, b timed) int { return int(a.at - b.at) })
	undone := map[*fault]bool{}
	for _, s := range steps {
		time.Sleep(time.Until(chaosStart.Add(s.at)))
		if s.do {
			sc.log("nemesis: %s", s.f.what)
			s.f.do()
		} else {
			sc.log("nemesis: end of %s", s.f.what)
			s.f.undo()
			undone[s.f] = true
		}
	}
	time.Sleep(time.Until(chaosStart.Add(chaosFor)))
	var pending []fault
	for i := range faults {
		if faults[i].undo != nil && !undone[&faults[i]] {
			pending = append(pending, faults[i])
		}
	}
	sc.heal(pending)

	// Settle: with everything healed, the target alive or (drawn) dead
	// again. Either every monitor arms again, or a record exists.
	finalDead := sc.rng.IntN(3) != 0
	sc.setTarget("ok")
	deadline := time.Now().Add(settleFor)
	var recordBefore bool
	for {
		exists, _, _ := sc.recordState()
		if exists {
			recordBefore = true
			break
		}
		armed := 0
		for _, st := range sc.liveStates() {
			if st == "armed" {
				armed++
			}
		}
		if armed == len(sc.mode.monitors) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("neither a record nor every monitor armed %v after the heal: %v", settleFor, sc.liveStates())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if finalDead && !recordBefore {
		sc.log("the target dies for good, every monitor armed")
		sc.setTarget("fail")
	}
	// The checker's bound: a failover begins within settleFor, and the
	// monitors all leave the armed state once a record exists.
	deadline = time.Now().Add(settleFor)
	for {
		exists, _, _ := sc.recordState()
		calls := len(sc.s.handlerCalls())
		states := sc.liveStates()
		armed := 0
		for _, st := range states {
			if st == "armed" || st == "unarmed" || st == "starting" {
				armed++
			}
		}
		if (!finalDead || recordBefore || calls > 0) && (!exists || armed == 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: record %v, handler runs %d, monitors %v (target dead: %v)", settleFor, exists, calls, states, finalDead)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sc.check(finalDead && !recordBefore)
}

// check verifies the invariants on the history.
func (sc *schedule) check(mustFailOver bool) {
	t := sc.t
	// Handlers that began finish (they sleep at most 2 s).
	var calls []handlerCall
	waitFor(t, 30*time.Second, "every handler run to finish", func() bool {
		calls = sc.s.handlerCalls()
		for i := range calls {
			if !calls[i].finished {
				return false
			}
		}
		return true
	})
	exists, state, interrupted := sc.recordState()
	sc.log("record exists %v, state %q, interrupted %v; %d handler runs", exists, state, interrupted, len(calls))

	// 1. At most one handler run per record: the schedule never removes
	// the record, so at most one in all.
	if len(calls) > 1 {
		var who []string
		for _, c := range calls {
			who = append(who, c.env["FSTAID_E2E_MONITOR"])
		}
		t.Errorf("INVARIANT at most one failover: the handler ran %d times, by %v", len(calls), who)
	}
	// A handler run has a record, taken before it began.
	if len(calls) > 0 && !exists {
		t.Errorf("INVARIANT lock first: the handler ran but no record exists")
	}
	// 2. A handler that began either finished under its monitor, whose
	// record then says so, or its monitor was SIGKILLed by the nemesis
	// meanwhile, and the record stays failing-over.
	if len(calls) == 1 && exists {
		m := calls[0].env["FSTAID_E2E_MONITOR"]
		sc.mu.Lock()
		killed := len(sc.killedAt[m]) > 0
		sc.mu.Unlock()
		switch {
		case state == "done":
		case state == "failing-over" && killed:
			if sc.mode.etcd && !interrupted {
				// The holder lease (2 s) may still be expiring, and a new
				// etcd leader extends every lease by its TTL again.
				deadline := time.Now().Add(15 * time.Second)
				for !interrupted && time.Now().Before(deadline) {
					time.Sleep(500 * time.Millisecond)
					_, _, interrupted = sc.recordState()
				}
				if !interrupted {
					t.Errorf("INVARIANT interrupted: %s was SIGKILLed, the record is failing-over, but not shown interrupted 15 s later", m)
				}
			}
		default:
			// fstaidd writes "done" right after the handler returns;
			// give it the time to.
			waitFor(t, 10*time.Second, "the record to say done", func() bool {
				_, st, _ := sc.recordState()
				return st == "done"
			})
		}
	}
	// 2b. While its handler runs, a monitor says failing-over, and its
	// watchdog deadline is ahead: neither a round nor the watchdog may
	// cut the failover short.
	for _, c := range calls {
		ppid, _ := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(c.dir, "ppid"))))
		began, ended := mtime(filepath.Join(c.dir, "ppid")), mtime(filepath.Join(c.dir, "finished"))
		sc.mu.Lock()
		samples := slices.Clone(sc.samples)
		sc.mu.Unlock()
		for _, x := range samples {
			if x.pid != ppid || !x.sent.After(began) || !x.got.Before(ended) {
				continue
			}
			if x.state != "failing-over" {
				t.Errorf("INVARIANT one gate: %s (pid %d) said %q at %.3fs while its handler ran (%.3fs to %.3fs)",
					x.m, x.pid, x.state, x.got.Sub(sc.start).Seconds(), began.Sub(sc.start).Seconds(), ended.Sub(sc.start).Seconds())
				break
			}
			if !x.got.Before(x.deadline) {
				t.Errorf("INVARIANT watchdog: %s (pid %d) had a deadline %v already past at %.3fs while its handler ran: the watchdog would kill it",
					x.m, x.pid, x.deadline, x.got.Sub(sc.start).Seconds())
				break
			}
		}
	}
	// 3. Liveness: with the target dead for good while every monitor
	// was armed and everything reachable, a failover began.
	if mustFailOver && len(calls) == 0 {
		t.Errorf("INVARIANT liveness: the target was dead %v with every monitor armed and nothing cut, and no failover began", settleFor)
	}
	// 4. No monitor runs armed after a record exists.
	if exists {
		for m, st := range sc.liveStates() {
			if st == "armed" || st == "unarmed" {
				t.Errorf("INVARIANT stop once failed over: %s is %s although a record exists", m, st)
			}
		}
	}
	// Safety of the quorum: without a manual failover and with the
	// target never made to fail, no handler ran (a monitor cut from the
	// target is outvoted).
	sc.mu.Lock()
	manual, died := sc.manual, sc.targetDied
	sc.mu.Unlock()
	if sc.mode.quorum > 0 && !manual && !died && !mustFailOver && len(calls) > 0 {
		t.Errorf("INVARIANT no false failover: the target never failed and no one asked, yet the handler ran")
	}
	// Exit statuses: only what the unit knows.
	sc.mu.Lock()
	for m, codes := range sc.exits {
		for _, c := range codes {
			switch c {
			case -1, 0, 10, 11, 12, 13, 14, 70:
			case 78:
				if sc.mode.etcd {
					t.Errorf("%s exited 78 although its configuration is valid", m)
				}
			default:
				t.Errorf("%s exited %d, which the unit does not expect", m, c)
			}
		}
	}
	sc.mu.Unlock()
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func mtime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
