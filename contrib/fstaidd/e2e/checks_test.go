package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Check processes that misbehave: hung, forking, lingering, chatty.

// Scenario 6: a check command that ignores SIGTERM and forks children
// that ignore it too. At the timeout the whole process group is killed:
// afterwards no process of it remains.
func TestScenario06HungCheckLeavesNothing(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	check := filepath.Join(s.dir, "check-hang.sh")
	hang := filepath.Join(s.dir, "hang")
	pids := filepath.Join(s.dir, "pids")
	script := fmt.Sprintf(`#!/bin/sh
# A check that ignores SIGTERM and leaves children behind while %[1]s
# exists; a plain curl check otherwise.
if [ ! -e %[1]q ]; then exec curl -s -f http://target/; fi
trap '' TERM
echo $$ >> %[2]q
sleep 300 &
echo $! >> %[2]q
( trap '' TERM; sleep 300 & echo $! >> %[2]q; wait ) &
echo $! >> %[2]q
wait
`, hang, pids)
	if err := os.WriteFile(check, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	primary := fmt.Sprintf("[primary]\ncommand = %q\ntimeout = 0.5\n", check)
	d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primary+secondaryCurl))
	fstaiddPid := d.cmd.Process.Pid

	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := d.waitStatus(15*time.Second, "a round whose primary timed out", func(st *status) bool {
		return st.LastRound != nil && st.LastRound.Primary != nil && st.LastRound.Primary.TimedOut
	})
	first := st.Rounds
	d.waitStatus(15*time.Second, "2 more hung rounds", func(st *status) bool { return st.Rounds >= first+2 })
	os.Remove(hang)
	d.waitStatus(15*time.Second, "a healthy round after the hang", func(st *status) bool {
		return st.LastRound != nil && st.LastRound.Verdict == "healthy"
	})

	b, _ := os.ReadFile(pids)
	var all []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		all = append(all, pid)
	}
	if len(all) < 8 {
		t.Fatalf("the hung check recorded only %d pids (%q): it did not run twice", len(all), b)
	}
	for _, pid := range all {
		if alive(pid) {
			t.Errorf("pid %d of a timed-out check is still running (%s)", pid, procComm(pid))
		}
	}
	// Nothing else runs in the monitor's namespace but fstaidd (its
	// current check may be in flight: wait for a moment without one).
	waitFor(t, 5*time.Second, "only fstaidd in the monitor namespace", func() bool {
		out, _ := exec.Command("ip", "netns", "pids", "monitor").Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, _ := strconv.Atoi(f); pid != fstaiddPid && alive(pid) {
				return false
			}
		}
		return true
	})
	s.noCalls()
	reapZombies(all)
	d.signal(syscall.SIGTERM)
	wantExit(t, d, 10*time.Second, exitStopped)
}

// Scenario 6, variants: a check that exits but leaves a child holding its
// stdout (the classic os/exec hang: Wait waits for the pipe), and a check
// that prints 20 MB. Both pass promptly, the child is gone, and the log
// stays bounded.
func TestScenario06ChattyAndLingeringChecks(t *testing.T) {
	needHarness(t)
	for _, tc := range []struct{ name, script string }{
		{"child-holds-stdout", "#!/bin/sh\nsleep 300 &\necho $! >> %[1]q\necho target ok\nexit 0\n"},
		{"prints-20MB", "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' x\necho\nexit 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newTopology(t, true)
			s := newScenario(t)
			pids := filepath.Join(s.dir, "pids")
			check := filepath.Join(s.dir, "check.sh")
			writeFile(t, check, fmt.Sprintf(tc.script, pids))
			os.Chmod(check, 0o755)
			primary := fmt.Sprintf("[primary]\ncommand = %q\ntimeout = 2\n", check)
			d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primary+secondaryCurl))
			st := d.waitStatus(15*time.Second, "3 more rounds", func(st *status) bool { return st.Rounds >= 4 })
			if p := st.LastRound.Primary; p == nil || !p.Passed || p.TimedOut {
				t.Errorf("last round's primary = %+v, want passed, not timed out", p)
			} else if st.LastRound.Verdict != "healthy" || st.LastRound.DurationNS > int64(time.Second) {
				t.Errorf("last round = verdict %s in %v, want healthy well within the 2s timeout", st.LastRound.Verdict, time.Duration(st.LastRound.DurationNS))
			}
			b, _ := os.ReadFile(pids)
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				if alive(pid) {
					t.Errorf("pid %d, left behind by a check that exited, still runs", pid)
				}
				reapZombies([]int{pid})
			}
			if tc.name == "prints-20MB" {
				wantLog(t, d.logText(), "xxxxxxxxxxxxxxxx") // it did print, and it was logged
			}
			if fi, err := os.Stat(d.logPath); err == nil && fi.Size() > 4<<20 {
				t.Errorf("fstaidd's log is %d bytes after a few rounds: check output must be logged bounded", fi.Size())
			}
			s.noCalls()
			d.signal(syscall.SIGTERM)
			wantExit(t, d, 10*time.Second, exitStopped)
		})
	}
}
