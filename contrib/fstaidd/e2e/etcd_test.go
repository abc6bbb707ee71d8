package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Monitor redundancy through etcd (issue 7), with real hosts: three
// fstaidd on three hosts, a three-member etcd cluster on three more, one
// target, all on one LAN (etcdnet_test.go). Each scenario asserts the exit
// statuses, the handler's argv/env (who ran it) and the shared record.
func TestEtcdMonitors(t *testing.T) {
	t.Run("target-dies-exactly-one-failover", func(t *testing.T) {
		n := newEtcdNet(t)
		n.recordEtcdViewInHandler(0)
		ds := n.armedMonitors("")
		n.target.stop()
		winner := oneWinner(t, ds, 30*time.Second)

		c := n.s.oneCall()
		wantArgv(t, c, "1", "false", "-1", "false")
		wantEnv(t, c, "FSTAID_E2E_MONITOR", winner, "FSTAID_REASON", "auto")
		// From inside the handler: the shared record already existed,
		// failing over, held by the monitor running it.
		inside := n.handlerEtcdView(1)
		if inside.Record == nil || inside.Record.State != "failing-over" || inside.Holder == nil || inside.Holder.Monitor != winner {
			t.Errorf("etcd record seen from the handler = %+v holder %+v, want failing-over held by %s", inside.Record, inside.Holder, winner)
		}
		st, _ := n.etcdView(otherThan(winner))
		wantEtcdRecord(t, st, "done", ds[winner])
		for m, d := range ds {
			// A loser either lost the race to create the record, or saw
			// it appear (the lock's watch) before it decided itself.
			if log := d.logText(); m != winner && !strings.Contains(log, "another writer holds the failover lock") &&
				!strings.Contains(log, "another monitor took the failover lock") {
				t.Errorf("%s's log does not say another monitor failed over:\n%s", m, log)
			}
			// The file lock is not used with [etcd]: nothing on disk.
			if _, err := os.Stat(filepath.Join(n.dir, m, "lock", "fstaid."+daemonPort+".lock")); err == nil {
				t.Errorf("%s wrote a file lock; with [etcd] the record lives in etcd only", m)
			}
		}
	})

	t.Run("holder-SIGKILLed-mid-handler-no-second-run", func(t *testing.T) {
		n := newEtcdNet(t)
		n.recordEtcdViewInHandler(30 * time.Second)
		ds := n.armedMonitors("")
		n.target.stop()
		waitFor(t, 20*time.Second, "a handler to start", func() bool {
			_, err := os.Stat(filepath.Join(n.s.calls, "call.1", "etcd"))
			return err == nil
		})
		winner := n.s.handlerCalls()[0].env["FSTAID_E2E_MONITOR"]
		if ds[winner] == nil {
			t.Fatalf("handler ran by %q, not one of the monitors", winner)
		}
		// The handler runs in its own process group, so SIGKILL to
		// fstaidd leaves it sleeping; the test ends it by its pid.
		b, _ := os.ReadFile(filepath.Join(n.s.calls, "call.1", "pid"))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
		}
		ds[winner].signal(syscall.SIGKILL)
		if code := ds[winner].wait(t, 5*time.Second); code != -1 {
			t.Fatalf("%s exit status = %d after SIGKILL, want -1", winner, code)
		}
		for m, d := range ds {
			if m != winner {
				wantExit(t, d, 20*time.Second, exitLocked)
			}
		}

		// Its holder lease (holder_ttl = 2) expires: the record stays,
		// marked interrupted, and nobody takes over.
		other := otherThan(winner)
		waitFor(t, 15*time.Second, "the record to show the interruption", func() bool {
			st, _ := n.etcdView(other)
			return st.Interrupted
		})
		st, _ := n.etcdView(other)
		if st.Record == nil || st.Record.State != "failing-over" || st.Record.PID != ds[winner].cmd.Process.Pid || st.Holder != nil {
			t.Errorf("record after the holder died = %+v holder %+v, want failing-over by pid %d, no holder", st.Record, st.Holder, ds[winner].cmd.Process.Pid)
		}
		out, _ := fstaiddToolIn(t, other, "status", "-config", filepath.Join(n.dir, other, "fstaidd.toml"))
		wantLog(t, out, "WARNING: a failover was interrupted")

		// systemd would restart it: it refuses, the handler is not run again.
		d := n.startMonitor(filepath.Join(n.dir, winner, "fstaidd.toml"), winner)
		wantExit(t, d, 20*time.Second, exitLocked)
		wantLog(t, d.logText(), "a failover record exists (found at start-up")
		if c := n.s.oneCall(); c.finished {
			t.Errorf("the killed handler finished: it was meant to be interrupted")
		}
	})

	t.Run("monitor-cut-from-target-vetoed-by-quorum", func(t *testing.T) {
		n := newEtcdNet(t)
		ds := n.armedMonitors("quorum = 2\n")
		// m1 loses the target (the target's replies to it vanish), not
		// etcd: one dead verdict of the two required.
		run(t, "ip", "-n", "tgt", "route", "add", "blackhole", etcdHostIP["m1"]+"/32")
		st := ds["m2"].waitStatus(15*time.Second, "m1's dead verdict, m2's and m3's alive", func(st *status) bool {
			return st.Etcd != nil && verdictsAre(st.Etcd, "m1", "dead", "m2", "alive", "m3", "alive")
		})
		start := st.Rounds
		ds["m1"].waitStatus(15*time.Second, "m1 to veto", func(*status) bool {
			return strings.Contains(ds["m1"].logText(), "not enough monitors see the target dead")
		})
		ds["m2"].waitStatus(15*time.Second, "10 more rounds", func(st *status) bool { return st.Rounds >= start+10 })
		n.s.noCalls()
		for m, d := range ds {
			if d.exited() {
				t.Fatalf("%s exited %d while only m1 saw the target dead:\n%s", m, d.code, tail(d.logPath))
			}
		}

		// Now the target really dies: every monitor sees it, one fails over.
		n.target.stop()
		winner := oneWinner(t, ds, 30*time.Second)
		c := n.s.oneCall()
		wantArgv(t, c, "1", "false", "1", "false")
		wantEnv(t, c, "FSTAID_E2E_MONITOR", winner)
		if e := c.env["FSTAID_SECONDARY_ERROR"]; !strings.Contains(e, "confirmed by") {
			t.Errorf("FSTAID_SECONDARY_ERROR = %q, want the quorum's confirmation", e)
		}
		view, _ := n.etcdView(otherThan(winner))
		wantEtcdRecord(t, view, "done", ds[winner])
	})

	t.Run("etcd-unreachable-fails-closed-then-one-failover", func(t *testing.T) {
		n := newEtcdNet(t)
		ds := n.armedMonitors("")
		n.cutEtcd()
		n.target.stop()
		for m, d := range ds {
			waitFor(t, 30*time.Second, m+" to refuse a failover without the lock twice", func() bool {
				return metric(t, d, "fstaid_lock_unavailable_total") >= 2 || d.exited()
			})
			if d.exited() {
				t.Fatalf("%s exited %d with etcd unreachable, want it to keep watching:\n%s", m, d.code, tail(d.logPath))
			}
			wantLog(t, d.logText(), "failover lock unavailable")
			if !strings.Contains(d.notify.all(), "; last attempt blocked: fstaid: failover lock unavailable") {
				t.Errorf("%s's STATUS= never said the failover is blocked: %s", m, d.notify.all())
			}
			// Still watching: each round with the target dead tries again
			// (failing-over while it tries), and /status says why not.
			if st, err := d.status(); err != nil || st.EtcdError == "" || st.State != "armed" && st.State != "failing-over" {
				t.Errorf("%s /status = %+v (%v), want armed or failing-over, with an etcd_error", m, st, err)
			}
		}
		n.s.noCalls()

		// etcd is back: the target is still dead, one monitor fails over.
		n.restoreEtcd()
		winner := oneWinner(t, ds, 60*time.Second)
		wantEnv(t, n.s.oneCall(), "FSTAID_E2E_MONITOR", winner)
		st, _ := n.etcdView(otherThan(winner))
		wantEtcdRecord(t, st, "done", ds[winner])
	})
}

// recordEtcdViewInHandler makes the shared handler save `fstaidd status`
// of the monitor running it (calls/call.N/etcd) before it sleeps.
func (n *etcdNet) recordEtcdViewInHandler(sleep time.Duration) {
	n.s.handlerAction = fmt.Sprintf(`%s status -json -config %q/"$FSTAID_E2E_MONITOR"/fstaidd.toml > "$d/call.$n/etcd.tmp" 2>&1
mv "$d/call.$n/etcd.tmp" "$d/call.$n/etcd"`, fstaiddBin, n.dir)
	n.s.writeHandler(sleep, 0)
}

// handlerEtcdView is the etcd view the handler saved in call N.
func (n *etcdNet) handlerEtcdView(call int) *etcdStatus {
	t := n.t
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.s.calls, "call."+strconv.Itoa(call), "etcd"))
	if err != nil {
		t.Fatalf("the handler saved no etcd view: %v", err)
	}
	return parseEtcdView(t, "the handler's fstaidd status", string(b))
}

// oneWinner waits for every monitor to exit and asserts that exactly one
// failed over (10) and every other found the record (12); it returns the
// one that failed over.
func oneWinner(t *testing.T, ds map[string]*daemon, timeout time.Duration) string {
	t.Helper()
	winner := ""
	for _, m := range etcdMonitors {
		switch code := ds[m].wait(t, timeout); code {
		case exitFailedOver:
			if winner != "" {
				t.Errorf("%s and %s both failed over", winner, m)
			}
			winner = m
		case exitLocked:
		default:
			t.Errorf("%s exit status = %d, want 10 (failed over) or 12 (found the record); log:\n%s", m, code, tail(ds[m].logPath))
		}
	}
	if winner == "" {
		t.Fatal("no monitor failed over")
	}
	return winner
}

// otherThan is a monitor host other than m.
func otherThan(m string) string {
	if m == etcdMonitors[0] {
		return etcdMonitors[1]
	}
	return etcdMonitors[0]
}

// wantEtcdRecord asserts the shared record: state, written by d, one
// successful handler run.
func wantEtcdRecord(t *testing.T, st *etcdStatus, state string, d *daemon) {
	t.Helper()
	r := st.Record
	if r == nil {
		t.Fatal("no record in etcd after the failover")
	}
	if r.State != state || r.PID != d.cmd.Process.Pid || r.Event == nil || r.Event.Reason != "auto" {
		t.Errorf("etcd record = state %q pid %d event %+v, want %s by pid %d, reason auto", r.State, r.PID, r.Event, state, d.cmd.Process.Pid)
	}
	if len(r.Handlers) != 1 || r.Handlers[0].Error != "" || r.Handlers[0].DurationNS <= 0 {
		t.Errorf("etcd record handlers = %+v, want one successful run", r.Handlers)
	}
}

// verdictsAre reports whether the fresh verdicts are exactly kv
// (monitor, verdict, ...).
func verdictsAre(st *etcdStatus, kv ...string) bool {
	got := map[string]string{}
	for _, v := range st.Verdicts {
		got[v.Monitor] = v.Verdict
	}
	if len(got) != len(kv)/2 {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if got[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// metric reads one counter from the daemon's /metrics (0 when absent).
func metric(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	code, body, err := d.request(http.MethodGet, "/metrics")
	if err != nil || code != http.StatusOK {
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
