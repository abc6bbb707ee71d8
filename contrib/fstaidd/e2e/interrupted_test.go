package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A failover interrupted by SIGKILL or SIGTERM, and re-arming after it.

// Scenario 8: fstaidd is SIGKILLed while a slow handler runs. The record
// stays in state failing-over; the next start refuses (12) and the
// handler is not run again.
func TestScenario08KilledDuringHandler(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	s.writeHandler(30*time.Second, 0)
	cfg := s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primaryCurl+secondaryCurl)
	d := armed(t, cfg)
	tp.target.stop()
	pidFile := filepath.Join(s.calls, "call.1", "pid")
	waitFor(t, 15*time.Second, "the handler to start and record its call", func() bool {
		_, err := os.Stat(filepath.Join(s.calls, "call.1", "lock"))
		return err == nil
	})
	d.signal(syscall.SIGKILL)
	d.wait(t, 10*time.Second)
	// The handler ran in its own process group and outlived fstaidd (under
	// systemd, KillMode=mixed would reap it with the unit): end it, by
	// the pid it recorded.
	b, _ := os.ReadFile(pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		syscall.Kill(-pid, syscall.SIGKILL)
		waitFor(t, 5*time.Second, "the orphaned handler to die", func() bool { return !alive(pid) })
		reapZombies([]int{pid})
	}
	r := s.readRecord()
	if r.State != "failing-over" || r.Event == nil || r.Event.Reason != "auto" || r.PID != d.cmd.Process.Pid {
		t.Errorf("record after SIGKILL = %+v, want failing-over by pid %d, reason auto", r, d.cmd.Process.Pid)
	}
	before, _ := os.ReadFile(s.lockPath())

	tp.startTarget() // even with a healthy target, the record wins
	d2 := startDaemon(t, "monitor", cfg)
	wantExit(t, d2, 15*time.Second, exitLocked)
	if calls := s.handlerCalls(); len(calls) != 1 {
		t.Errorf("handler ran %d times, want once (not again after the restart)", len(calls))
	}
	after, _ := os.ReadFile(s.lockPath())
	if string(after) != string(before) {
		t.Errorf("the refused start changed the record:\n%s\n->\n%s", before, after)
	}
	log := d2.logText()
	wantLog(t, log, s.lockPath(), "state failing-over", "refusing to start")
	if tp.targetCount("requests") != 0 {
		t.Errorf("the refused start checked the target %d times, want none", tp.targetCount("requests"))
	}
}

// Scenario 8, variant: SIGTERM while the handler runs does not cut the
// failover in half: the handler finishes and fstaidd reports the failover
// (10), not a clean stop (0).
func TestScenario08SigtermDuringHandler(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	s.writeHandler(1500*time.Millisecond, 0)
	d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primaryCurl+secondaryCurl))
	tp.target.stop()
	waitFor(t, 15*time.Second, "the handler to start", func() bool {
		_, err := os.Stat(filepath.Join(s.calls, "call.1", "lock"))
		return err == nil
	})
	d.signal(syscall.SIGTERM)
	wantExit(t, d, 20*time.Second, exitFailedOver)
	if c := s.oneCall(); !c.finished {
		t.Errorf("SIGTERM cut the handler short")
	}
	wantDoneRecord(t, s, d, "auto")
}

// Scenario 8, epilogue: re-arming is a human's decision. `fstaidd unlock`
// shows the record and the roles warning and removes nothing; with -yes
// it removes the record and the next start arms.
func TestScenario08Rearm(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	cfg := s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl)
	d := armed(t, cfg)
	if code, _, err := d.request("POST", "/fail"); err != nil || code != http.StatusOK {
		t.Fatalf("POST /fail: %d %v", code, err)
	}
	wantExit(t, d, 20*time.Second, exitFailedOver)

	tool := func(args ...string) (string, int) { return fstaiddTool(t, args...) }
	out, code := tool("unlock", "-config", cfg)
	if code == 0 || !strings.Contains(out, "roles are swapped") || !strings.Contains(out, `"reason": "manual"`) {
		t.Errorf("fstaidd unlock without -yes: exit %d\n%s\nwant non-zero, the record and the roles warning", code, out)
	}
	if _, err := os.Stat(s.lockPath()); err != nil {
		t.Fatalf("unlock without -yes removed the record: %v", err)
	}
	d2 := startDaemon(t, "monitor", cfg)
	wantExit(t, d2, 15*time.Second, exitLocked)

	if out, code := tool("unlock", "-yes", "-config", cfg); code != 0 {
		t.Fatalf("fstaidd unlock -yes: exit %d\n%s", code, out)
	}
	s.noLock()
	armed(t, cfg).signal(syscall.SIGTERM)
	if calls := s.handlerCalls(); len(calls) != 1 {
		t.Errorf("handler ran %d times, want once", len(calls))
	}
}
