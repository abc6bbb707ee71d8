package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// startEtcd runs a one-member etcd in the test process on 127.0.0.1.
func startEtcd(t *testing.T) string {
	endpoint, _ := startStoppableEtcd(t)
	return endpoint
}

// startStoppableEtcd is startEtcd with a function that stops etcd.
func startStoppableEtcd(t *testing.T) (string, func()) {
	t.Helper()
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port())}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port())}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(e.Close) }
	t.Cleanup(stop)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		t.Fatal("etcd not ready")
	}
	return client.String(), stop
}

func etcdSection(endpoint, id string) string {
	return fmt.Sprintf("\n[etcd]\nendpoints = [%q]\nprefix = \"/fstaid/db1\"\nmonitor_id = %q\n", endpoint, id)
}

// Two fstaidd on "different hosts" watch one target through one etcd:
// the target dies, exactly one handler runs across both, the other
// monitor stops on the record (exit 12).
func TestEtcdTwoDaemonsOneFailover(t *testing.T) {
	endpoint := startEtcd(t)
	e1 := newEnv(t, 0, etcdSection(endpoint, "mon1"))
	e2 := newEnv(t, 0, etcdSection(endpoint, "mon2"))
	// One target: both primaries look at e1's marker.
	data, _ := os.ReadFile(e2.config)
	os.WriteFile(e2.config, []byte(strings.Replace(string(data), e2.dir+"/dead", e1.dir+"/dead", 1)), 0o644)
	r1, r2 := e1.start(), e2.start()
	r1.waitState(t, fstaid.StateArmed)
	r2.waitState(t, fstaid.StateArmed)
	e1.touch("dead")
	codes := map[int]int{}
	codes[r1.wait(t)]++
	codes[r2.wait(t)]++
	if total := len(e1.calls()) + len(e2.calls()); total != 1 {
		t.Fatalf("handlers ran %d times across both monitors, want 1", total)
	}
	if codes[exitFailedOver] != 1 || codes[exitLocked] != 1 {
		t.Errorf("exit statuses %v, want one 10 and one 12", codes)
	}
	// The file lock is not used with [etcd].
	if _, err := os.Stat(e1.lockPath()); !os.IsNotExist(err) {
		t.Errorf("a file lock was written: %v", err)
	}
	// status shows the shared record; unlock removes it only with -yes.
	if _, out := runCmd(t, "status", "-config", e1.config, "-addr", "127.0.0.1:1"); !strings.Contains(out, "shared record: DONE") {
		t.Errorf("status lacks the etcd record:\n%s", out)
	}
	if code, out := runCmd(t, "unlock", "-config", e1.config); code != 1 || !strings.Contains(out, "roles are swapped") {
		t.Errorf("unlock without -yes = %d:\n%s", code, out)
	}
	if code, out := runCmd(t, "unlock", "-config", e1.config, "-yes"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("unlock -yes = %d:\n%s", code, out)
	}
	if code, out := runCmd(t, "check", "-config", e1.config); !strings.Contains(out, "reachable and writable") || strings.Contains(out, "LOCKED") {
		t.Errorf("check after unlock = %d:\n%s", code, out)
	}
}

// on_unavailable = "local-lock": etcd dies while the daemon is armed, the
// target dies, and the daemon fails over with the file lock; `fstaidd
// unlock` clears that file even while etcd is still down.
func TestEtcdLocalLockFallback(t *testing.T) {
	endpoint, stopEtcd := startStoppableEtcd(t)
	e := newEnv(t, 0, etcdSection(endpoint, "mon1")+"dial_timeout = 1\non_unavailable = \"local-lock\"\n")
	if code, out := runCmd(t, "check", "-config", e.config); !strings.Contains(out, "falling back to "+e.lockPath()) {
		t.Errorf("check = %d, does not name the fallback lock:\n%s", code, out)
	}
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	stopEtcd()
	e.touch("dead")
	if code := r.wait(t); code != exitFailedOver {
		t.Fatalf("exit status %d, want %d (failed over through the local lock)", code, exitFailedOver)
	}
	if n := len(e.calls()); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	rec, err := fstaid.NewFileLock(e.lockPath()).Load(t.Context())
	if err != nil || rec == nil || rec.State != fstaid.RecordDone {
		t.Fatalf("local record = %+v, %v; want done", rec, err)
	}
	// The next start is refused by the local record, etcd or not.
	if code := e.start().wait(t); code != exitLocked {
		t.Errorf("restart exit status %d, want %d (locked by the local record)", code, exitLocked)
	}
	if n := len(e.calls()); n != 1 {
		t.Errorf("handler ran again: %d calls", n)
	}
	code, out := runCmd(t, "unlock", "-config", e.config, "-yes")
	if !strings.Contains(out, "removed "+e.lockPath()) {
		t.Errorf("unlock -yes = %d, did not remove the local record:\n%s", code, out)
	}
	if _, err := os.Stat(e.lockPath()); !os.IsNotExist(err) {
		t.Errorf("the local record is still there: %v", err)
	}
}

func TestEtcdConfig(t *testing.T) {
	_, err := ParseConfig(validBase + "[secondary]\ntcp = \"a:1\"\ntimeout = 1\n[etcd]\nendpoints = []\nquorum = 2\nprefx = \"x\"\n")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"[etcd] endpoints", "prefx", "[etcd] quorum: replaces [secondary]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lacks %q:\n%v", want, err)
		}
	}
}

// An etcd outage at boot is restarted (70), also when [etcd] username
// makes the client authenticate while it connects; only a credential that
// etcd refuses is a configuration error (78).
func TestEtcdBootExitStatus(t *testing.T) {
	endpoint, stopEtcd := startStoppableEtcd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "fstaid", "right"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	auth := func(password string, dialTimeout int) string {
		return etcdSection(endpoint, "mon1") + fmt.Sprintf("dial_timeout = %d\nusername = \"fstaid\"\npassword = %q\n", dialTimeout, password)
	}
	// A generous dial_timeout for the refusal: etcd's own bcrypt of the
	// password, under -race on a loaded machine, took longer than 3 s,
	// and a refusal that comes too late is an outage (70).
	if code := newEnv(t, 0, auth("wrong", 20)).start().wait(t); code != exitConfig {
		t.Errorf("wrong password: exit %d, want %d (a refused credential)", code, exitConfig)
	}
	stopEtcd()
	if code := newEnv(t, 0, auth("right", 3)).start().wait(t); code != exitSoftware {
		t.Errorf("etcd down with a username: exit %d, want %d (an outage, restarted)", code, exitSoftware)
	}
}

// A verdict_ttl shorter than the time between two rounds' publications
// is refused, naming both keys and their values; left unset, it is
// derived from them.
func TestEtcdVerdictTTLCoversRounds(t *testing.T) {
	base := strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = 6\nmaxattempts = 1", 1)
	etcdTable := "\n[etcd]\nendpoints = [\"http://127.0.0.1:1\"]\nprefix = \"/fstaid/db1\"\nquorum = 2\n"
	_, err := ParseConfig(base + etcdTable + "verdict_ttl = 2\n")
	if err == nil {
		t.Fatal("verdict_ttl = 2 with interval = 6 accepted")
	}
	for _, want := range []string{"[etcd] verdict_ttl", "2 s is below [global] interval = 6 s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	cfg, err := ParseConfig(base + etcdTable)
	if err != nil {
		t.Fatal(err)
	}
	store, err := etcd.Open(cfg.Etcd, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// 6 s interval + (1 × 1 s primary + 5 s quorum + 4 × 0.5 s + 1 s).
	if got, want := store.VoteTTL(), 15*time.Second; got != want {
		t.Errorf("derived verdict TTL = %v, want %v", got, want)
	}
	if cfg, err := ParseConfig(base + etcdTable + "verdict_ttl = 15\n"); err != nil || cfg.Etcd.VoteTTL != 15*time.Second {
		t.Errorf("verdict_ttl = 15 (the floor): %v", err)
	}
	// Without a quorum the verdicts are off: no floor.
	if _, err := ParseConfig(base + strings.Replace(etcdTable, "quorum = 2", "verdict_ttl = 2", 1)); err != nil {
		t.Errorf("verdict_ttl without quorum: %v", err)
	}
}

// roundTiming is the Monitor's own RoundBound, computed from the config.
func TestRoundTimingMatchesMonitor(t *testing.T) {
	for _, extra := range []string{
		"",
		"\n[self]\ncommand = \"true\"\ntimeout = 0.7\n",
	} {
		config := strings.Replace(validBase, "port = 8080", "port = 8080\ninterval = 3\nmaxattempts = 4\nattempt_interval = 0.25", 1) +
			extra + "\n[etcd]\nendpoints = [\"http://127.0.0.1:1\"]\nprefix = \"/fstaid/db1\"\nquorum = 2\n"
		cfg, err := ParseConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := cfg.Options(t.Context(), discard)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, fstaid.WithSecondary(fstaid.CheckFunc(func(context.Context) error { return nil }), quorumTimeout),
			fstaid.WithLock(fstaid.NewFileLock(filepath.Join(t.TempDir(), "lock"))))
		m, err := fstaid.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Etcd.Interval != 3*time.Second || cfg.Etcd.RoundBound != m.RoundBound() {
			t.Errorf("%s: roundTiming = %v, %v; the Monitor's interval 3s, RoundBound %v", extra, cfg.Etcd.Interval, cfg.Etcd.RoundBound, m.RoundBound())
		}
	}
}

// watching returns a config like e's but for monitor id: same target,
// same primary check.
func (e *env) watching(t *testing.T, section string) string {
	o := newEnv(t, 0, section)
	data, _ := os.ReadFile(o.config)
	os.WriteFile(o.config, []byte(strings.Replace(string(data), o.dir+"/dead", e.dir+"/dead", 1)), 0o644)
	return o.config
}

// publishAs keeps publishing "alive" verdicts as monitor id of config
// (another fstaidd's verdicts, from its own parsed configuration) every
// 200ms until the test ends.
func publishAs(t *testing.T, config string) *etcd.Store {
	t.Helper()
	cfg, err := LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	store, err := etcd.Open(cfg.Etcd, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := store.Votes().Publish(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			store.Votes().Publish(ctx, false, "")
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	return store
}

// Two fstaidd with one monitor_id (cloned hosts): the second refuses to
// start (78) naming the key, instead of counting as the same monitor.
func TestEtcdDuplicateMonitorIDRefused(t *testing.T) {
	endpoint := startEtcd(t)
	section := etcdSection(endpoint, "db-monitor") + "quorum = 2\n"
	e := newEnv(t, 0, section)
	publishAs(t, e.watching(t, section))
	if code := e.start().wait(t); code != exitConfig {
		t.Fatalf("second monitor with the same monitor_id: exit %d, want %d", code, exitConfig)
	}
}

// fstaidd check and /status count the live monitors against k, and name
// those whose verdicts are about another target.
func TestEtcdLiveMonitorsAgainstQuorum(t *testing.T) {
	endpoint := startEtcd(t)
	section := func(id string) string { return etcdSection(endpoint, id) + "quorum = 3\n" }
	e := newEnv(t, 0, section("mon1"))
	publishAs(t, e.watching(t, section("mon2")))
	// mon3 watches another target under the same prefix.
	other := e.watching(t, section("mon3"))
	data, _ := os.ReadFile(other)
	os.WriteFile(other, []byte(strings.Replace(string(data), `target = "db1"`, `target = "db2"`, 1)), 0o644)
	publishAs(t, other)
	eventually := func(what string, f func() bool) {
		t.Helper()
		waitFor(t, 10*time.Second, func() error {
			if !f() {
				return errors.New(what)
			}
			return nil
		})
	}
	var out string
	eventually("check never saw both publishers", func() bool {
		_, out = runCmd(t, "check", "-config", e.config)
		return strings.Contains(out, "1 live monitor(s) publish") && strings.Contains(out, "the verdicts of mon3 are about another target")
	})
	if !strings.Contains(out, "WARNING: only 2 monitor(s) (mon2, mon1, this one included) for quorum 3") {
		t.Errorf("check does not warn about fewer monitors than k:\n%s", out)
	}
	r := e.start()
	st := r.waitState(t, fstaid.StateArmed)
	eventually("/status never counted mon1", func() bool {
		st = r.waitState(t, fstaid.StateArmed)
		return st.Etcd != nil && len(st.Etcd.Live) == 2
	})
	w := strings.Join(st.Etcd.Warnings, "\n")
	if st.Etcd.Quorum != 3 || !strings.Contains(w, "only 2 live monitor(s) publish verdicts (mon1, mon2) but quorum is 3") || !strings.Contains(w, "mon3 are about another target") {
		t.Errorf("/status etcd: quorum %d live %v warnings:\n%s", st.Etcd.Quorum, st.Etcd.Live, w)
	}
	// fstaidd status shows every monitor's vote, the quorum and the
	// warnings.
	_, out = runCmd(t, "status", "-config", e.config, "-addr", strings.TrimPrefix(r.url, "http://"))
	for _, want := range []string{"etcd: etcd key ", "  quorum 3; live monitors: mon1, mon2", "  vote of mon1: alive (round ", "  vote of mon2: alive",
		"  vote of mon3: alive", "  not counted (another target or configuration): mon3", "  WARNING: only 2 live monitor(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("fstaidd status lacks %q:\n%s", want, out)
		}
	}
}

// `fstaidd status` with the daemon down and [etcd] alone shows the etcd
// record, never the unused lock file as "free".
func TestStatusOfStoppedDaemonShowsTheEtcdRecord(t *testing.T) {
	endpoint := startEtcd(t)
	e := newEnv(t, 0, etcdSection(endpoint, "mon1"))
	cfg, err := LoadConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openEtcd(cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec := &fstaid.Record{State: fstaid.RecordDone, Host: "mon-elsewhere", PID: 4242, Time: time.Now(),
		Event: &fstaid.Event{Reason: fstaid.ReasonAuto, Target: "db1"}}
	if err := store.Lock().Acquire(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, "status", "-config", e.config, "-addr", "127.0.0.1:1")
	if code != exitUnreachable || !strings.Contains(out, "not reachable") || !strings.Contains(out, "lock: in etcd") ||
		!strings.Contains(out, "by mon-elsewhere pid 4242") || strings.Contains(out, "free") {
		t.Errorf("status of a stopped daemon with [etcd] = %d:\n%s", code, out)
	}
	// With the local-lock fallback, the file is shown too, named as such.
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, append(data, "on_unavailable = \"local-lock\"\n"...), 0o644)
	if _, out := runCmd(t, "status", "-config", e.config, "-addr", "127.0.0.1:1"); !strings.Contains(out, "fallback lock") ||
		!strings.Contains(out, e.lockPath()+": free") || !strings.Contains(out, "by mon-elsewhere pid 4242") {
		t.Errorf("status with the local-lock fallback:\n%s", out)
	}
}
