package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Failover readiness: a deploy removes the handler script from under a
// running fstaidd, then the lock directory is remounted read-only. Each
// time the next readiness run turns it not ready — /status names the
// handler or the lock, STATUS= says so, `fstaidd status` shows it, and
// the notify command hears not-ready — and the repair turns it ready
// again, which the notify command hears too. The rounds go on
// meanwhile, and nothing fails over.
func TestReadinessNotify(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	dir := filepath.Join(s.dir, "notified")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeNotify(t, dir)
	cfg := s.writeConfig("interval = 0.2\ntarget = \"web-01\"\nreadiness_interval = 0.5\n",
		primaryCurl+secondaryCurl+"[notify]\ncommand = \""+script+"\"\ntimeout = 5\n")
	d := armed(t, cfg)
	ready := d.waitStatus(10*time.Second, "readiness ready", func(st *status) bool { return st.Readiness == "ready" })

	moved := s.handler + ".deployed-away"
	if err := os.Rename(s.handler, moved); err != nil {
		t.Fatal(err)
	}
	st := d.waitStatus(10*time.Second, "readiness not-ready", func(st *status) bool { return st.Readiness == "not-ready" })
	if len(st.ReadinessProblems) != 1 || st.ReadinessProblems[0].Kind != "handler" || st.ReadinessProblems[0].Resource != s.handler {
		t.Errorf("readiness problems %+v, want the handler %s", st.ReadinessProblems, s.handler)
	}
	if gap := st.ReadinessChecked.Sub(ready.ReadinessChecked); gap > 2*time.Second {
		t.Errorf("not ready %v after a ready run, with readiness_interval 0.5 s", gap)
	}
	waitFor(t, 5*time.Second, "STATUS= to say not ready", func() bool {
		_, ok := d.notify.has("STATUS=armed: watching web-01; NOT READY to fail over: handler " + s.handler)
		return ok
	})
	if err := os.Rename(moved, s.handler); err != nil {
		t.Fatal(err)
	}
	d.waitStatus(10*time.Second, "readiness ready again", func(st *status) bool { return st.Readiness == "ready" })

	// The lock directory remounted read-only: a bind mount of it onto
	// itself in fstaidd's own mount namespace (ip netns exec made it one),
	// inside the suite's.
	inDaemon := func(args ...string) {
		t.Helper()
		argv := append([]string{"-t", strconv.Itoa(st.PID), "-m", "--"}, args...)
		if out, err := exec.Command("nsenter", argv...).CombinedOutput(); err != nil {
			t.Fatalf("nsenter %v: %v\n%s", argv, err, out)
		}
	}
	inDaemon("mount", "--bind", s.lockDir, s.lockDir)
	inDaemon("mount", "-o", "remount,bind,ro", s.lockDir)
	unmounted := false
	t.Cleanup(func() {
		if !unmounted && !d.exited() {
			inDaemon("umount", s.lockDir)
		}
	})
	st = d.waitStatus(10*time.Second, "readiness not-ready (lock)", func(st *status) bool { return st.Readiness == "not-ready" })
	if len(st.ReadinessProblems) != 1 || st.ReadinessProblems[0].Kind != "lock" || st.ReadinessProblems[0].Resource != s.lockPath() ||
		!strings.Contains(st.ReadinessProblems[0].Message, "read-only file system") {
		t.Errorf("readiness problems %+v, want the lock %s read-only", st.ReadinessProblems, s.lockPath())
	}
	if out, code := fstaiddTool(t, "status", "-config", cfg); code != 0 || !strings.Contains(out, "readiness: NOT READY") || !strings.Contains(out, "lock "+s.lockPath()+": not writable") {
		t.Errorf("fstaidd status (exit %d) does not show the lock problem:\n%s", code, out)
	}
	inDaemon("umount", s.lockDir)
	unmounted = true
	d.waitStatus(10*time.Second, "readiness ready again (lock)", func(st *status) bool { return st.Readiness == "ready" })
	rounds := st.Rounds
	if st, err := d.status(); err != nil || st.State != "armed" || st.Rounds <= rounds {
		t.Errorf("status %+v (%v): want armed, rounds going on", st, err)
	}
	d.stop()
	if n := len(s.handlerCalls()); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}

	calls := notifyCalls(dir)
	want := []struct{ transition, old, state string }{
		{"armed", "starting", "armed"},
		{"not-ready", "ready", "not-ready"},
		{"ready", "not-ready", "ready"},
		{"not-ready", "ready", "not-ready"},
		{"ready", "not-ready", "ready"},
		{"stopped", "armed", "stopped"},
	}
	var got []string
	for _, c := range calls {
		got = append(got, strings.Join(c.argv, " "))
	}
	if len(calls) != len(want) {
		t.Fatalf("notify ran %d times (%q), want %d", len(calls), got, len(want))
	}
	for i, w := range want {
		c := calls[i]
		if strings.Join(c.argv, " ") != "INSTANCE web-01 "+w.transition {
			t.Errorf("run %d: argv %q, want INSTANCE web-01 %s", i+1, c.argv, w.transition)
		}
		if c.env["FSTAID_TRANSITION"] != w.transition || c.env["FSTAID_OLD_STATE"] != w.old || c.env["FSTAID_STATE"] != w.state {
			t.Errorf("run %d: %v, want %s from %s to %s", i+1, c.env, w.transition, w.old, w.state)
		}
	}
	if r := calls[1].env["FSTAID_REASON"]; !strings.Contains(r, "handler "+s.handler) || !strings.Contains(r, "not an executable file") {
		t.Errorf("not-ready reason %q, want the handler and why", r)
	}
	if n := countLines(d.logText(), "FAILOVER PATH NOT READY"); n != 2 {
		t.Errorf("the log has %d not-ready lines, want 2 (one per change)", n)
	}
}
