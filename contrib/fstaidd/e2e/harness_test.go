package e2e

import (
	"bytes"
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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test network. Every address is in 10.231.0.0/16 and exists only in
// the namespaces below, which exist only inside the harness's own network
// namespace (see main_test.go).
//
//	monitor m-t 10.231.1.1 ---- 10.231.1.2 t-m target (lo: 10.231.9.9, "target")
//	monitor m-b 10.231.2.1 ---- 10.231.2.2 b-m bastion ("bastion", proxy :3128)
//	bastion b-t 10.231.3.1 ---- 10.231.3.2 t-b target
//
// The target serves on 10.231.9.9:80, reached from the monitor through
// m-t and from the bastion through b-t, so cutting m-t leaves the
// bastion's path (the secondary check) intact.
const (
	targetIP   = "10.231.9.9"
	bastionIP  = "10.231.2.2"
	proxyPort  = "3128"
	daemonPort = "8080"
	hostsFile  = "127.0.0.1 localhost\n" +
		"10.231.9.9 target\n" +
		"10.231.2.2 bastion\n" +
		"10.231.1.1 monitor\n"
)

// Checks as the original fstaid's example writes them, and native ones.
const (
	primaryCurl   = "[primary]\ncommand = \"curl -s -f http://target/\"\ntimeout = 1\n"
	secondaryCurl = "[secondary]\ncommand = \"curl -s -f -x http://bastion:3128 http://target/\"\ntimeout = 1\n"
	selfCurl      = "[self]\ncommand = \"curl -s -f http://bastion:3128/\"\ntimeout = 1\n"
	primaryHTTP   = "[primary]\nhttp = \"http://target/\"\ntimeout = 1\n"
	secondaryHTTP = "[secondary]\nhttp = \"http://target/\"\nproxy = \"http://bastion:3128\"\ntimeout = 1\n"
)

// The basic-auth user of every config (the original's [[user]]).
const (
	authUser = "ops"
	authPass = "s3cret"
)

// run runs a command in the harness's namespaces and fails the test if
// it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor polls cond every 20ms until it holds, or fails the test after
// timeout saying what it waited for.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// topology is the monitor/target/bastion network of one scenario; it is
// removed by t.Cleanup, processes first, also when the scenario fails.
type topology struct {
	t   *testing.T
	dir string // scratch directory of the scenario
	// targetCtrl steers the target server (see targetServer).
	targetCtrl string
	target     *proc
	proxy      *proc
}

var namespaces = []string{"monitor", "target", "bastion"}

// newTopology creates the namespaces and links; with servers, it also
// starts the target service and the bastion's proxy.
func newTopology(t *testing.T, servers bool) *topology {
	t.Helper()
	needHarness(t)
	tp := &topology{t: t, dir: t.TempDir()}
	tp.targetCtrl = filepath.Join(tp.dir, "target")
	if err := os.Mkdir(tp.targetCtrl, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("removing namespace %s: %v %s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	for _, l := range []struct{ a, aNS, aIP, b, bNS, bIP string }{
		{"m-t", "monitor", "10.231.1.1/24", "t-m", "target", "10.231.1.2/24"},
		{"m-b", "monitor", "10.231.2.1/24", "b-m", "bastion", "10.231.2.2/24"},
		{"b-t", "bastion", "10.231.3.1/24", "t-b", "target", "10.231.3.2/24"},
	} {
		// Created straight into the namespaces: nothing appears in the
		// harness's own namespace, even for a moment.
		run(t, "ip", "link", "add", l.a, "netns", l.aNS, "type", "veth", "peer", "name", l.b, "netns", l.bNS)
		run(t, "ip", "-n", l.aNS, "addr", "add", l.aIP, "dev", l.a)
		run(t, "ip", "-n", l.bNS, "addr", "add", l.bIP, "dev", l.b)
		run(t, "ip", "-n", l.aNS, "link", "set", l.a, "up")
		run(t, "ip", "-n", l.bNS, "link", "set", l.b, "up")
	}
	run(t, "ip", "-n", "target", "addr", "add", targetIP+"/32", "dev", "lo")
	run(t, "ip", "-n", "monitor", "route", "add", targetIP+"/32", "via", "10.231.1.2", "dev", "m-t")
	run(t, "ip", "-n", "bastion", "route", "add", targetIP+"/32", "via", "10.231.3.2", "dev", "b-t")
	if servers {
		tp.startTarget()
		tp.startProxy()
	}
	return tp
}

// addStandby adds the standby host: namespace standby, linked to the
// monitor (m-s 10.231.4.1 / s-m 10.231.4.2) and the bastion (b-s
// 10.231.5.1 / s-b 10.231.5.2), running the same service, which answers
// "standby ok". The service address 10.231.9.9 is not on it until a
// handler moves it there.
func (tp *topology) addStandby() *proc {
	t := tp.t
	t.Helper()
	run(t, "ip", "netns", "add", "standby")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", "standby").CombinedOutput(); err != nil {
			t.Errorf("removing namespace standby: %v %s", err, out)
		}
	})
	run(t, "ip", "-n", "standby", "link", "set", "lo", "up")
	for _, l := range []struct{ a, aNS, aIP, b, bIP string }{
		{"m-s", "monitor", "10.231.4.1/24", "s-m", "10.231.4.2/24"},
		{"b-s", "bastion", "10.231.5.1/24", "s-b", "10.231.5.2/24"},
	} {
		run(t, "ip", "link", "add", l.a, "netns", l.aNS, "type", "veth", "peer", "name", l.b, "netns", "standby")
		run(t, "ip", "-n", l.aNS, "addr", "add", l.aIP, "dev", l.a)
		run(t, "ip", "-n", "standby", "addr", "add", l.bIP, "dev", l.b)
		run(t, "ip", "-n", l.aNS, "link", "set", l.a, "up")
		run(t, "ip", "-n", "standby", "link", "set", l.b, "up")
	}
	ctrl := filepath.Join(tp.dir, "standby")
	if err := os.Mkdir(ctrl, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "standby", "standby", filepath.Join(tp.dir, "standby.log"),
		[]string{envRole + "=target"}, selfBin, "0.0.0.0:80", ctrl)
	waitReady(t, p, filepath.Join(ctrl, "ready"))
	return p
}

// moveToStandby is a handler action that moves the service address from
// the target to the standby and points the monitor's and the bastion's
// routes at it, as a route-table or secondary-IP handler would.
const moveToStandby = `ip -n target addr del 10.231.9.9/32 dev lo || true   # fence the old active
ip -n standby addr add 10.231.9.9/32 dev lo
ip -n monitor route replace 10.231.9.9/32 via 10.231.4.2 dev m-s
ip -n bastion route replace 10.231.9.9/32 via 10.231.5.2 dev b-s`

// startTarget starts the target service in the target namespace.
func (tp *topology) startTarget() {
	t := tp.t
	t.Helper()
	ready := filepath.Join(tp.targetCtrl, "ready")
	for _, f := range []string{"ready", "requests", "failures", "conns"} {
		os.Remove(filepath.Join(tp.targetCtrl, f)) // a new server counts afresh
	}
	tp.target = startProc(t, "target", "target", filepath.Join(tp.dir, "target.log"),
		[]string{envRole + "=target"}, selfBin, "0.0.0.0:80", tp.targetCtrl)
	waitReady(t, tp.target, ready)
}

// startProxy starts the bastion's forward proxy.
func (tp *topology) startProxy() {
	t := tp.t
	t.Helper()
	ready := filepath.Join(tp.dir, "proxy.ready")
	tp.proxy = startProc(t, "proxy", "bastion", filepath.Join(tp.dir, "proxy.log"),
		[]string{envRole + "=proxy"}, selfBin, "0.0.0.0:"+proxyPort, ready)
	waitReady(t, tp.proxy, ready)
}

// waitReady waits for a helper's ready file, and checks that the pid we
// hold is the helper's own (ip netns exec replaces itself with the
// program; if it ever forked, stopping "our" pid would miss the server).
func waitReady(t *testing.T, p *proc, ready string) {
	t.Helper()
	// The file appears before its pid is written in it: wait for both.
	waitFor(t, 10*time.Second, p.name+" to listen", func() bool {
		b, err := os.ReadFile(ready)
		_, perr := strconv.Atoi(string(b))
		return err == nil && perr == nil || p.exited()
	})
	if p.exited() {
		t.Fatalf("%s exited at start: %s", p.name, tail(p.logPath))
	}
	b, _ := os.ReadFile(ready)
	if pid, _ := strconv.Atoi(string(b)); pid != p.cmd.Process.Pid {
		t.Fatalf("%s runs as pid %d but we started pid %d: ip netns exec forked", p.name, pid, p.cmd.Process.Pid)
	}
}

// setTarget steers the target server: ok, fail, slow=DURATION, flap=N.
func (tp *topology) setTarget(mode string) {
	tp.t.Helper()
	if err := os.WriteFile(filepath.Join(tp.targetCtrl, "mode"), []byte(mode), 0o644); err != nil {
		tp.t.Fatal(err)
	}
}

// targetCount reads the target's counter file (requests, failures).
func (tp *topology) targetCount(name string) int {
	b, _ := os.ReadFile(filepath.Join(tp.targetCtrl, name))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// linkDown cuts a link at one end, as a pulled cable or a dead switch
// port would (no netem in this kernel).
func linkDown(t *testing.T, ns, dev string) {
	t.Helper()
	run(t, "ip", "-n", ns, "link", "set", dev, "down")
}

// proc is a process the harness started; only these are ever signalled.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	code    int // exit status, -1 when killed by a signal
}

// startProc starts argv in network namespace ns (through ip netns exec,
// which execs the program in place, so cmd.Process.Pid is the program),
// in its own process group, logging to logPath. t.Cleanup stops it.
func startProc(t *testing.T, name, ns, logPath string, env []string, argv ...string) *proc {
	t.Helper()
	return startProcArgv(t, name, logPath, env, append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

// startProcArgv starts argv as is (see startProc).
func startProcArgv(t *testing.T, name, logPath string, env []string, argv ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// cleanEnv is the harness's environment without what would change how
// fstaidd or curl behave (systemd's variables, proxies) or what marks
// the harness itself.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LISTEN_"), k == "NOTIFY_SOCKET", k == "JOURNAL_STREAM",
			k == "WATCHDOG_USEC", k == "WATCHDOG_PID", k == "STATE_DIRECTORY",
			strings.HasSuffix(strings.ToLower(k), "_proxy"), k == envInner, k == envRole:
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process we started, by its pid, if it runs.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		syscall.Kill(p.cmd.Process.Pid, sig)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; its log:\n%s", p.name, timeout, tail(p.logPath))
		return 0
	}
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 12000 {
		b = b[len(b)-12000:]
	}
	return string(b)
}

// nsDialer returns a DialContext that opens its sockets in the network
// namespace at nsPath (/run/netns/NAME, /proc/PID/ns/net): a socket
// belongs to the namespace of the thread that created it. The thread is
// locked for the switch and, if it cannot switch back, never unlocked, so
// Go retires it instead of reusing it.
func nsDialer(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			c, err, restored := dialIn(ctx, nsPath, network, addr)
			if restored {
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

func dialIn(ctx context.Context, nsPath, network, addr string) (c net.Conn, err error, restored bool) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err, true
	}
	defer orig.Close()
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, err, true
	}
	defer ns.Close()
	if err := setns(ns); err != nil {
		return nil, fmt.Errorf("setns %s: %w", nsPath, err), true
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	if serr := setns(orig); serr != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("setns back: %w", serr), false
	}
	return c, err, true
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// httpClientIn is an HTTP client whose connections live in a network
// namespace; fresh connections, no proxy from the environment.
func httpClientIn(nsPath string) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       nsDialer(nsPath),
			DisableKeepAlives: true,
		},
	}
}

// notifySocket collects what fstaidd sends to NOTIFY_SOCKET.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "e2e-n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// has reports whether a datagram holds a line with the prefix, and
// returns that line.
func (n *notifySocket) has(prefix string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, prefix) {
				return line, true
			}
		}
	}
	return "", false
}

func (n *notifySocket) all() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.msgs, " | ")
}

// daemon is a running fstaidd.
type daemon struct {
	*proc
	t      *testing.T
	notify *notifySocket
	client *http.Client
	base   string
}

// startDaemon runs fstaidd -config cfg in network namespace ns, with a
// NOTIFY_SOCKET of the test's. It does not wait for anything.
func startDaemon(t *testing.T, ns, cfg string) *daemon {
	t.Helper()
	return startDaemonEnv(t, ns, cfg, nil)
}

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(t *testing.T, ns, cfg string, env []string) *daemon {
	t.Helper()
	d := &daemon{t: t, notify: newNotifySocket(t), client: httpClientIn("/run/netns/" + ns),
		base: "http://127.0.0.1:" + daemonPort}
	d.proc = startProc(t, "fstaidd", ns, filepath.Join(filepath.Dir(cfg), "fstaidd.log"),
		append([]string{"NOTIFY_SOCKET=" + d.notify.path}, env...), fstaiddBin, "-config", cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fstaidd log (%s):\n%s\nsd_notify: %s", d.logPath, tail(d.logPath), d.notify.all())
		}
	})
	return d
}

// waitReady waits for READY=1.
func (d *daemon) waitReady() {
	d.t.Helper()
	waitFor(d.t, 10*time.Second, "fstaidd to send READY=1", func() bool {
		_, ok := d.notify.has("READY=1")
		return ok || d.exited()
	})
	if d.exited() {
		d.t.Fatalf("fstaidd exited %d before READY=1:\n%s", d.code, tail(d.logPath))
	}
}

// status is GET /status, as far as the suite reads it.
type status struct {
	State     string  `json:"state"`
	Reason    string  `json:"reason"`
	Armed     bool    `json:"armed"`
	Rounds    int     `json:"rounds"`
	LastRound *round  `json:"last_round"`
	Record    *record `json:"record"`
	PID       int     `json:"pid"`
	// Deadline is when the loop must next make progress (the watchdog's).
	Deadline time.Time `json:"deadline"`
	// Etcd is the shared view with [etcd]; EtcdError why it is missing.
	Etcd      *etcdStatus `json:"etcd"`
	EtcdError string      `json:"etcd_error"`
	// Readiness is ready, not-ready or unknown; each problem names its
	// kind and resource.
	Readiness         string    `json:"readiness"`
	ReadinessProblems []problem `json:"readiness_problems"`
	ReadinessChecked  time.Time `json:"readiness_checked"`
}

// problem is a readiness problem.
type problem struct {
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	Action   string `json:"action"`
	Message  string `json:"message"`
}

// etcdStatus is contrib/etcd.Status as the suite reads it (in /status and
// in `fstaidd status`).
type etcdStatus struct {
	Record *record `json:"record"`
	Holder *struct {
		Monitor string `json:"monitor"`
		PID     int    `json:"pid"`
	} `json:"holder"`
	Interrupted bool `json:"interrupted"`
	Verdicts    []struct {
		Monitor string `json:"monitor"`
		Verdict string `json:"verdict"`
	} `json:"verdicts"`
}

type round struct {
	Number     int          `json:"number"`
	Startup    bool         `json:"startup"`
	DurationNS int64        `json:"duration_ns"`
	Verdict    string       `json:"verdict"`
	Self       *checkResult `json:"self"`
	Primary    *checkResult `json:"primary"`
	Secondary  *checkResult `json:"secondary"`
}

type checkResult struct {
	Check      string `json:"check"`
	Passed     bool   `json:"passed"`
	ExitStatus int    `json:"exit_status"`
	TimedOut   bool   `json:"timed_out"`
	HTTPStatus int    `json:"http_status"`
	Error      string `json:"error"`
	Attempts   int    `json:"attempts"`
}

// record is the failover record (the lock file's JSON).
type record struct {
	State    string           `json:"state"`
	Time     time.Time        `json:"time"`
	Host     string           `json:"host"`
	PID      int              `json:"pid"`
	Event    *event           `json:"event"`
	Handlers []handlerOutcome `json:"handlers"`
	Legacy   bool             `json:"legacy"`
}

type event struct {
	Reason      string       `json:"reason"`
	Target      string       `json:"target"`
	Primary     checkResult  `json:"primary"`
	Secondary   checkResult  `json:"secondary"`
	Self        *checkResult `json:"self"`
	RequestedBy string       `json:"requested_by"`
}

type handlerOutcome struct {
	Name       string    `json:"name"`
	Start      time.Time `json:"start"`
	DurationNS int64     `json:"duration_ns"`
	Error      string    `json:"error"`
	TimedOut   bool      `json:"timed_out"`
}

// request sends an authenticated request to the daemon and returns the
// status code and body.
func (d *daemon) request(method, path string) (int, []byte, error) {
	req, err := http.NewRequest(method, d.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(authUser, authPass)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func (d *daemon) status() (*status, error) {
	code, body, err := d.request("GET", "/status")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /status: %d %s", code, body)
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET /status: %w: %s", err, body)
	}
	return &st, nil
}

// waitStatus polls /status until cond holds, and returns that status.
func (d *daemon) waitStatus(timeout time.Duration, what string, cond func(*status) bool) *status {
	d.t.Helper()
	var last *status
	var lastErr error
	deadline := time.Now().Add(timeout)
	for {
		if d.exited() {
			d.t.Fatalf("fstaidd exited %d while waiting for %s", d.code, what)
		}
		st, err := d.status()
		if err == nil && cond(st) {
			return st
		}
		if err == nil {
			last = st
		}
		lastErr = err
		if time.Now().After(deadline) {
			b, _ := json.Marshal(last)
			d.t.Fatalf("timed out after %v waiting for %s; last status %s (error %v)", timeout, what, b, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failResponse is a /fail answer.
type failResponse struct {
	Accepted bool    `json:"accepted"`
	Message  string  `json:"message"`
	Record   *record `json:"record"`
}

// logText is what fstaidd logged so far.
func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// fstaiddTool runs an fstaidd subcommand (status, fail, unlock) in the
// monitor namespace and returns its output and exit status.
func fstaiddTool(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return fstaiddToolIn(t, "monitor", args...)
}

// fstaiddToolIn is fstaiddTool in network namespace ns.
func fstaiddToolIn(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, fstaiddBin}, args...)...)
	cmd.Env = cleanEnv()
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// scenario is one scenario's files: config, lock directory, handler.
type scenario struct {
	t       *testing.T
	dir     string
	lockDir string
	calls   string // the handler records each call here
	handler string
	// handlerAction is shell run by the handler after it recorded its
	// call, before it sleeps: what a real handler does (move an address).
	handlerAction string
	// handlerTimeout is [handler] timeout in seconds; "10" by default.
	handlerTimeout string
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{t: t, dir: t.TempDir()}
	s.lockDir = filepath.Join(s.dir, "lock")
	s.calls = filepath.Join(s.dir, "calls")
	for _, d := range []string{s.lockDir, s.calls} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.writeHandler(0, 0)
	return s
}

// lockPath is <lockdir>/fstaid.<port>.lock.
func (s *scenario) lockPath() string {
	return filepath.Join(s.lockDir, "fstaid."+daemonPort+".lock")
}

// writeHandler writes the handler script: it records each call in
// calls/call.N/ (argv one per line, the FSTAID_* environment, the lock
// file as it was when the handler started, its pid), sleeps, and exits
// with exit.
func (s *scenario) writeHandler(sleep time.Duration, exit int) {
	s.t.Helper()
	s.handler = filepath.Join(s.dir, "handler.sh")
	script := fmt.Sprintf(`#!/bin/sh
# e2e handler: records each call, as an operator's script would act on it.
d=%q
n=1
while ! mkdir "$d/call.$n" 2>/dev/null; do n=$((n+1)); done
echo $$ > "$d/call.$n/pid"
echo $PPID > "$d/call.$n/ppid"
for a in "$@"; do printf '%%s\n' "$a"; done > "$d/call.$n/argv"
env | grep '^FSTAID_' | sort > "$d/call.$n/env"
if [ -e %q ]; then cat %q > "$d/call.$n/lock"; else echo MISSING > "$d/call.$n/lock"; fi
%s
sleep %s
echo finished > "$d/call.$n/finished"
exit %d
`, s.calls, s.lockPath(), s.lockPath(), s.handlerAction, strconv.FormatFloat(sleep.Seconds(), 'f', -1, 64), exit)
	if err := os.WriteFile(s.handler, []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// writeConfig writes fstaidd.toml: [global] port and lockdir, then the
// extra global lines, a [handler] running the scenario's handler, the
// check sections, and the [[user]].
func (s *scenario) writeConfig(global, sections string) string {
	s.t.Helper()
	timeout := s.handlerTimeout
	if timeout == "" {
		timeout = "10"
	}
	cfg := fmt.Sprintf("[global]\nport = %s\nlockdir = %q\n%s\n[handler]\ncommand = %q\ntimeout = %s\n\n%s\n[[user]]\nuserid = %q\npassword = %q\n",
		daemonPort, s.lockDir, global, s.handler, timeout, sections, authUser, authPass)
	path := filepath.Join(s.dir, "fstaidd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// handlerCall is one run of the handler, as it recorded it.
type handlerCall struct {
	argv     []string
	env      map[string]string
	lock     string // the lock file when the handler started
	finished bool
	dir      string // calls/call.N
}

// handlerCalls returns the handler's runs so far, in order.
func (s *scenario) handlerCalls() []handlerCall {
	s.t.Helper()
	var calls []handlerCall
	for n := 1; ; n++ {
		dir := filepath.Join(s.calls, "call."+strconv.Itoa(n))
		if _, err := os.Stat(dir); err != nil {
			return calls
		}
		c := handlerCall{dir: dir}
		// The handler writes its files in order; wait for the last one
		// before "finished" (a call that was just starting).
		waitFor(s.t, 5*time.Second, "the handler to record call "+strconv.Itoa(n), func() bool {
			_, err := os.Stat(filepath.Join(dir, "lock"))
			return err == nil
		})
		argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
		c.argv = strings.Fields(string(argv))
		c.env = map[string]string{}
		envb, _ := os.ReadFile(filepath.Join(dir, "env"))
		for _, line := range strings.Split(string(envb), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				c.env[k] = v
			}
		}
		lock, _ := os.ReadFile(filepath.Join(dir, "lock"))
		c.lock = string(lock)
		_, err := os.Stat(filepath.Join(dir, "finished"))
		c.finished = err == nil
		calls = append(calls, c)
	}
}

// oneCall asserts that the handler ran exactly once and returns that run.
func (s *scenario) oneCall() handlerCall {
	s.t.Helper()
	calls := s.handlerCalls()
	if len(calls) != 1 {
		s.t.Fatalf("handler ran %d times, want exactly once", len(calls))
	}
	return calls[0]
}

// noCalls asserts that the handler never ran.
func (s *scenario) noCalls() {
	s.t.Helper()
	if calls := s.handlerCalls(); len(calls) != 0 {
		s.t.Fatalf("handler ran %d times, want never: argv %q", len(calls), calls[0].argv)
	}
}

// noLock asserts that no failover record was written.
func (s *scenario) noLock() {
	s.t.Helper()
	if b, err := os.ReadFile(s.lockPath()); !errors.Is(err, os.ErrNotExist) {
		s.t.Fatalf("lock file %s exists (err %v), want none: %s", s.lockPath(), err, b)
	}
}

// readRecord reads and decodes the lock record.
func (s *scenario) readRecord() *record {
	s.t.Helper()
	b, err := os.ReadFile(s.lockPath())
	if err != nil {
		s.t.Fatalf("reading the lock record: %v", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatalf("lock record %s is not JSON: %v\n%s", s.lockPath(), err, b)
	}
	return &r
}

// wantArgv asserts the handler's argv (the original's contract).
func wantArgv(t *testing.T, c handlerCall, want ...string) {
	t.Helper()
	if !slices.Equal(c.argv, want) {
		t.Errorf("handler argv = %q, want %q", c.argv, want)
	}
}

// wantEnv asserts FSTAID_* variables of the handler's environment.
func wantEnv(t *testing.T, c handlerCall, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if got, ok := c.env[kv[i]]; !ok || got != kv[i+1] {
			t.Errorf("handler env %s = %q (set %v), want %q", kv[i], got, ok, kv[i+1])
		}
	}
}

// wantEnvSet asserts that FSTAID_* variables are present and non-empty.
func wantEnvSet(t *testing.T, c handlerCall, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if c.env[k] == "" {
			t.Errorf("handler env %s is missing or empty; env: %v", k, c.env)
		}
	}
}

// wantLog asserts that fstaidd's log says something.
func wantLog(t *testing.T, log string, substrs ...string) {
	t.Helper()
	for _, s := range substrs {
		if !strings.Contains(log, s) {
			t.Errorf("fstaidd's log does not say %q", s)
		}
	}
}

// countLines counts log lines containing substr.
func countLines(log, substr string) int {
	return bytes.Count([]byte(log), []byte(substr))
}

// Exit statuses of fstaidd (README.md, "Exit statuses").
const (
	exitStopped       = 0
	exitFailedOver    = 10
	exitHandlerFailed = 11
	exitLocked        = 12
	exitStartupCheck  = 13
	exitSelfCheck     = 14
	exitConfig        = 78
)

func wantExit(t *testing.T, d *daemon, timeout time.Duration, want int) {
	t.Helper()
	if got := d.wait(t, timeout); got != want {
		t.Fatalf("fstaidd exit status = %d, want %d; log:\n%s", got, want, tail(d.logPath))
	}
}

// armed starts fstaidd in the monitor namespace and waits until it is
// armed.
func armed(t *testing.T, cfg string) *daemon {
	t.Helper()
	d := startDaemon(t, "monitor", cfg)
	d.waitReady()
	d.waitStatus(15*time.Second, "state armed", func(st *status) bool { return st.State == "armed" })
	return d
}

// wantRecordBeforeHandler asserts that the lock file already held a
// failing-over record when the handler started.
func wantRecordBeforeHandler(t *testing.T, c handlerCall, reason string) {
	t.Helper()
	var r record
	if err := json.Unmarshal([]byte(c.lock), &r); err != nil {
		t.Fatalf("when the handler started, the lock file was %q (%v): the record must be written before any handler runs", c.lock, err)
	}
	if r.State != "failing-over" || r.Event == nil || r.Event.Reason != reason {
		t.Errorf("record when the handler started: state %q event %+v, want failing-over, reason %s", r.State, r.Event, reason)
	}
}

// wantDoneRecord asserts the final record of a successful failover by
// the daemon d.
func wantDoneRecord(t *testing.T, s *scenario, d *daemon, reason string) *record {
	t.Helper()
	r := s.readRecord()
	if r.State != "done" {
		t.Errorf("record state = %q, want done", r.State)
	}
	if r.PID != d.cmd.Process.Pid {
		t.Errorf("record pid = %d, want fstaidd's %d", r.PID, d.cmd.Process.Pid)
	}
	if r.Host == "" || r.Time.IsZero() {
		t.Errorf("record host %q time %v: both must be set", r.Host, r.Time)
	}
	if r.Event == nil || r.Event.Reason != reason {
		t.Fatalf("record event = %+v, want reason %s", r.Event, reason)
	}
	if len(r.Handlers) != 1 || r.Handlers[0].Name != "handler" || r.Handlers[0].Error != "" || r.Handlers[0].DurationNS <= 0 {
		t.Errorf("record handlers = %+v, want one successful run of \"handler\" with its duration", r.Handlers)
	} else if r.Handlers[0].Start.Before(r.Time) {
		t.Errorf("handler started %v, before the lock was taken %v", r.Handlers[0].Start, r.Time)
	}
	return r
}
