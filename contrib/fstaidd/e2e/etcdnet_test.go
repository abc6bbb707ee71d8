package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The etcd network: one LAN (a bridge in namespace lan) joining a target,
// a three-member etcd cluster and three monitors, each host in its own
// namespace with eth0 on the LAN. Addresses are in 10.232.0.0/24 and
// exist only in these namespaces, inside the harness's own (main_test.go).
//
//	tgt 10.232.0.9 (service :80)
//	e1 10.232.0.11, e2 .12, e3 .13 (etcd :2379 clients, :2380 peers)
//	m1 10.232.0.21, m2 .22, m3 .23 (fstaidd)
const (
	etcdTargetIP = "10.232.0.9"
	etcdPrefix   = "/fstaid/e2e"
)

var (
	etcdMembers  = []string{"e1", "e2", "e3"}
	etcdMonitors = []string{"m1", "m2", "m3"}
	etcdHostIP   = map[string]string{
		"tgt": etcdTargetIP,
		"e1":  "10.232.0.11", "e2": "10.232.0.12", "e3": "10.232.0.13",
		"m1": "10.232.0.21", "m2": "10.232.0.22", "m3": "10.232.0.23",
	}
)

// etcdNet is the LAN of one etcd scenario, removed by t.Cleanup
// (processes first, then namespaces), also when the scenario fails.
type etcdNet struct {
	t          *testing.T
	dir        string
	targetCtrl string
	target     *proc
	members    map[string]*proc
	// s holds the handler every monitor runs, and its calls.
	s *scenario
}

// newEtcdNet builds the LAN, starts the target service and the etcd
// cluster, and waits until the cluster serves.
func newEtcdNet(t *testing.T) *etcdNet {
	t.Helper()
	needHarness(t)
	n := &etcdNet{t: t, dir: t.TempDir(), members: map[string]*proc{}, s: newScenario(t)}
	addNS := func(ns string) {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("removing namespace %s: %v %s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	addNS("lan")
	run(t, "ip", "-n", "lan", "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", "lan", "link", "set", "br0", "up")
	for _, h := range append(append([]string{"tgt"}, etcdMembers...), etcdMonitors...) {
		addNS(h)
		// Both ends created straight into their namespaces.
		run(t, "ip", "link", "add", "eth0", "netns", h, "type", "veth", "peer", "name", "v-"+h, "netns", "lan")
		run(t, "ip", "-n", "lan", "link", "set", "v-"+h, "master", "br0")
		run(t, "ip", "-n", "lan", "link", "set", "v-"+h, "up")
		run(t, "ip", "-n", h, "addr", "add", etcdHostIP[h]+"/24", "dev", "eth0")
		run(t, "ip", "-n", h, "link", "set", "eth0", "up")
	}

	n.targetCtrl = filepath.Join(n.dir, "target")
	if err := os.Mkdir(n.targetCtrl, 0o755); err != nil {
		t.Fatal(err)
	}
	n.target = startProc(t, "target", "tgt", filepath.Join(n.dir, "target.log"),
		[]string{envRole + "=target"}, selfBin, "0.0.0.0:80", n.targetCtrl)
	waitReady(t, n.target, filepath.Join(n.targetCtrl, "ready"))

	var cluster []string
	for _, m := range etcdMembers {
		cluster = append(cluster, m+"=http://"+etcdHostIP[m]+":2380")
	}
	// All three start before any is waited for: a member is ready only
	// once the cluster has elected a leader.
	for _, m := range etcdMembers {
		data := filepath.Join(n.dir, m+".etcd")
		n.members[m] = startProc(t, "etcd-"+m, m, filepath.Join(n.dir, m+".log"), []string{envRole + "=etcd"},
			selfBin, m, etcdHostIP[m], data, strings.Join(cluster, ","), filepath.Join(n.dir, m+".ready"))
	}
	for _, m := range etcdMembers {
		waitReady(t, n.members[m], filepath.Join(n.dir, m+".ready"))
	}
	return n
}

// monitorConfig writes monitor m's fstaidd.toml: the native HTTP check of
// the target, the shared handler, and [etcd] with the three members;
// extra goes into [etcd].
func (n *etcdNet) monitorConfig(m, extra string) string {
	t := n.t
	t.Helper()
	dir := filepath.Join(n.dir, m)
	lockDir := filepath.Join(dir, "lock")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, e := range etcdMembers {
		eps = append(eps, strconv.Quote("http://"+etcdHostIP[e]+":2379"))
	}
	cfg := fmt.Sprintf(`[global]
port = %s
interval = 0.2
maxattempts = 2
attempt_interval = 0.1
lockdir = %q

[handler]
command = %q
timeout = 60

[primary]
http = "http://%s/"
timeout = 0.5

[etcd]
endpoints = [%s]
prefix = %q
dial_timeout = 1
monitor_id = %q
holder_ttl = 2
verdict_ttl = 10
%s
[[user]]
userid = %q
password = %q
`, daemonPort, lockDir, n.s.handler, etcdTargetIP, strings.Join(eps, ", "), etcdPrefix, m, extra, authUser, authPass)
	path := filepath.Join(dir, "fstaidd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startMonitor starts fstaidd on host m. FSTAID_E2E_MONITOR=m is in its
// environment, so the handler (which records FSTAID_*) says who ran it.
func (n *etcdNet) startMonitor(cfg, m string) *daemon {
	n.t.Helper()
	return startDaemonEnv(n.t, m, cfg, []string{"FSTAID_E2E_MONITOR=" + m})
}

// armedMonitors starts fstaidd on every monitor host with [etcd] extra,
// and waits until all are armed.
func (n *etcdNet) armedMonitors(extra string) map[string]*daemon {
	n.t.Helper()
	ds := map[string]*daemon{}
	for _, m := range etcdMonitors {
		ds[m] = n.startMonitor(n.monitorConfig(m, extra), m)
	}
	for _, m := range etcdMonitors {
		ds[m].waitReady()
		ds[m].waitStatus(15*time.Second, m+" armed", func(st *status) bool { return st.State == "armed" })
	}
	return ds
}

// cutEtcd takes every member's link down (no member reaches another or
// any client: the cluster is gone for the monitors); restoreEtcd brings
// them back.
func (n *etcdNet) cutEtcd() {
	for _, m := range etcdMembers {
		linkDown(n.t, m, "eth0")
	}
}

func (n *etcdNet) restoreEtcd() {
	for _, m := range etcdMembers {
		run(n.t, "ip", "-n", m, "link", "set", "eth0", "up")
	}
}

// etcdView runs `fstaidd status -json` on host m and returns its etcd
// view (the shared record, its holder and every verdict) and the output.
func (n *etcdNet) etcdView(m string) (*etcdStatus, string) {
	t := n.t
	t.Helper()
	out, _ := fstaiddToolIn(t, m, "status", "-json", "-config", filepath.Join(n.dir, m, "fstaidd.toml"))
	return parseEtcdView(t, "fstaidd status -json on "+m, out), out
}

// parseEtcdView is the etcd view of `fstaidd status -json` output: the
// daemon's when it answered, else read from etcd by the tool.
func parseEtcdView(t *testing.T, what, out string) *etcdStatus {
	t.Helper()
	var st struct {
		Etcd      *etcdStatus `json:"etcd"`
		EtcdError string      `json:"etcd_error"`
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&st); err != nil {
		t.Fatalf("%s: not JSON (%v):\n%s", what, err, out)
	}
	if st.Etcd == nil {
		t.Fatalf("%s shows no etcd view (%s):\n%s", what, st.EtcdError, out)
	}
	return st.Etcd
}

// runEtcdMember is the etcd role: one member of the test cluster,
// embedded (go.etcd.io/etcd/server/v3/embed), listening on IP:2379 for
// clients and IP:2380 for peers. It writes READYFILE (its pid) once the
// cluster serves, and runs until it is killed.
func runEtcdMember(args []string) int {
	if len(args) != 5 {
		fmt.Fprintf(os.Stderr, "e2e role etcd: want NAME IP DATADIR CLUSTER READYFILE, got %q\n", args)
		return 2
	}
	name, ip, dir, cluster, ready := args[0], args[1], args[2], args[3], args[4]
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = name, dir
	logger, err := zap.NewProduction() // warnings and errors, to the role's log
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e role etcd:", err)
		return 1
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	// Fast elections on a LAN of veths; the data is thrown away.
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "http", Host: ip + ":2379"}
	peer := url.URL{Scheme: "http", Host: ip + ":2380"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cluster
	cfg.InitialClusterToken = "fstaid-e2e"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e role etcd:", err)
		return 1
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "e2e role etcd:", err)
		return 1
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "e2e role etcd: the cluster did not become ready in 30s")
		return 1
	}
	if err := os.WriteFile(ready, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "e2e role etcd:", err)
		return 1
	}
	err = <-e.Err()
	fmt.Fprintln(os.Stderr, "e2e role etcd:", err)
	return 1
}
