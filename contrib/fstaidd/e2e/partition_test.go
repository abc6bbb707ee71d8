package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Partitions: the monitor cut off from the target (the secondary check
// vetoes) or from everything (the self check stops it).

// Scenario 2: the monitor↔target link is cut; the bastion still reaches
// the target, so the secondary check vetoes the failover, loudly. Once
// with the original's curl commands, once with native HTTP checks.
func TestScenario02MonitorTargetLinkCut(t *testing.T) {
	needHarness(t)
	for _, tc := range []struct {
		name, sections  string
		wantPrimaryExit int
	}{
		{"curl", primaryCurl + secondaryCurl + selfCurl, 7}, // curl: network unreachable
		{"native", primaryHTTP + secondaryHTTP + selfCurl, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newTopology(t, true)
			s := newScenario(t)
			d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 2\n", tc.sections))

			linkDown(t, "monitor", "m-t")
			st := d.waitStatus(15*time.Second, "a round with verdict secondary-alive", func(st *status) bool {
				return st.LastRound != nil && st.LastRound.Verdict == "secondary-alive"
			})
			if p := st.LastRound.Primary; p == nil || p.Passed || p.ExitStatus != tc.wantPrimaryExit {
				t.Errorf("last round's primary = %+v, want failed with exit %d", p, tc.wantPrimaryExit)
			}
			if sec := st.LastRound.Secondary; sec == nil || !sec.Passed {
				t.Errorf("last round's secondary = %+v, want passed (through the bastion)", sec)
			}
			// Several more rounds: still no failover.
			first := st.Rounds
			d.waitStatus(15*time.Second, "3 more rounds", func(st *status) bool { return st.Rounds >= first+3 })
			if st, _ := d.status(); st == nil || st.State != "armed" {
				t.Errorf("state = %+v, want still armed", st)
			}
			s.noCalls()
			s.noLock()
			wantLog(t, d.logText(), "TARGET LOOKS DEAD FROM HERE BUT ALIVE FROM THE SECONDARY VANTAGE POINT")

			d.signal(syscall.SIGTERM)
			wantExit(t, d, 10*time.Second, exitStopped)
			s.noCalls()
		})
	}
}

// Scenario 3: the monitor itself is cut off: the self check fails, so
// there is no failover, and fstaidd exits 14 (systemd restarts it). With
// continue_if_self_check_failed it skips rounds instead.
func TestScenario03MonitorIsolated(t *testing.T) {
	needHarness(t)
	t.Run("exit-14", func(t *testing.T) {
		newTopology(t, true)
		s := newScenario(t)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl+selfCurl))
		linkDown(t, "monitor", "m-t")
		linkDown(t, "monitor", "m-b")
		wantExit(t, d, 15*time.Second, exitSelfCheck)
		s.noCalls()
		s.noLock()
		wantLog(t, d.logText(), "self check failed: this monitor is cut off; stopping without failover")
	})
	t.Run("self-fails-after-the-target", func(t *testing.T) {
		// Step 4: the target looks dead, but by then the monitor's own
		// check fails: no failover, and monitoring goes on (the original's
		// behaviour, not step 1's exit). The primary script marks the
		// moment it fails; the self script fails once after that mark.
		tp := newTopology(t, true)
		s := newScenario(t)
		mark := filepath.Join(s.dir, "isolated")
		primary := filepath.Join(s.dir, "primary.sh")
		self := filepath.Join(s.dir, "self.sh")
		writeFile(t, primary, fmt.Sprintf("#!/bin/sh\ncurl -s -f http://target/ && exit 0\ntouch %q\nexit 7\n", mark))
		writeFile(t, self, fmt.Sprintf("#!/bin/sh\nif [ -e %[1]q ]; then rm -f %[1]q; exit 1; fi\nexec curl -s -f http://bastion:3128/\n", mark))
		os.Chmod(primary, 0o755)
		os.Chmod(self, 0o755)
		sections := fmt.Sprintf("[primary]\ncommand = %q\ntimeout = 1\n\n%s\n[self]\ncommand = %q\ntimeout = 1\n", primary, secondaryCurl, self)
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", sections))
		tp.target.stop()
		st := d.waitStatus(15*time.Second, "a round with verdict self-check-failed-after", func(st *status) bool {
			return st.LastRound != nil && st.LastRound.Verdict == "self-check-failed-after"
		})
		first := st.Rounds
		d.waitStatus(15*time.Second, "3 more rounds", func(st *status) bool { return st.Rounds >= first+3 })
		if st, _ := d.status(); st == nil || st.State != "armed" {
			t.Errorf("state = %+v, want still armed", st)
		}
		s.noCalls()
		s.noLock()
		wantLog(t, d.logText(), "the self check failed after it: no failover")
		d.signal(syscall.SIGTERM)
		wantExit(t, d, 10*time.Second, exitStopped)
	})
	t.Run("continue_if_self_check_failed", func(t *testing.T) {
		newTopology(t, true)
		s := newScenario(t)
		d := armed(t, s.writeConfig("interval = 0.2\ncontinue_if_self_check_failed = true\n", primaryCurl+secondaryCurl+selfCurl))
		linkDown(t, "monitor", "m-t")
		linkDown(t, "monitor", "m-b")
		st := d.waitStatus(15*time.Second, "a round with verdict self-check-failed", func(st *status) bool {
			return st.LastRound != nil && st.LastRound.Verdict == "self-check-failed"
		})
		first := st.Rounds
		d.waitStatus(15*time.Second, "3 more rounds", func(st *status) bool { return st.Rounds >= first+3 })
		s.noCalls()
		s.noLock()
		wantLog(t, d.logText(), "self check failed: skipping the round")
		d.signal(syscall.SIGTERM)
		wantExit(t, d, 10*time.Second, exitStopped)
	})
}
