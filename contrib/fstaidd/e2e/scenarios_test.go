package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// Scenario 1: the target process dies. Exactly one failover; the record
// is on disk before the handler runs; the handler sees the original's
// argv and the FSTAID_* environment.
func TestScenario01TargetDies(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	cfg := s.writeConfig("interval = 0.2\nmaxattempts = 3\nattempt_interval = 0.1\ntarget = \"web-01\"\n",
		primaryCurl+secondaryCurl+selfCurl)
	d := armed(t, cfg)

	tp.target.stop() // the service dies; its host stays up (connection refused)
	wantExit(t, d, 20*time.Second, exitFailedOver)

	c := s.oneCall()
	// curl exit 7: connection refused; 22: -f and the bastion's 502.
	wantArgv(t, c, "7", "false", "22", "false")
	wantEnv(t, c, "FSTAID_REASON", "auto", "FSTAID_TARGET", "web-01",
		"FSTAID_PRIMARY_EXIT", "7", "FSTAID_PRIMARY_TIMED_OUT", "false", "FSTAID_PRIMARY_ATTEMPTS", "3",
		"FSTAID_SECONDARY_EXIT", "22", "FSTAID_SECONDARY_TIMED_OUT", "false",
		"FSTAID_SELF_EXIT", "0")
	wantEnvSet(t, c, "FSTAID_TIME", "FSTAID_ROUND_START", "FSTAID_ROUND_DURATION", "FSTAID_PRIMARY_DURATION")
	wantRecordBeforeHandler(t, c, "auto")
	r := wantDoneRecord(t, s, d, "auto")
	if r.Event.Target != "web-01" || r.Event.Primary.ExitStatus != 7 || r.Event.Secondary.ExitStatus != 22 ||
		r.Event.Primary.Attempts != 3 || r.Event.Primary.TimedOut || r.Event.Secondary.TimedOut {
		t.Errorf("record event = %+v, want target web-01, primary exit 7 after 3 attempts, secondary exit 22", r.Event)
	}
	wantLog(t, d.logText(), "target is dead: failing over", "failover done; every handler succeeded")
	if n := countLines(d.logText(), "failover lock taken"); n != 1 {
		t.Errorf("the log shows %d failovers, want 1", n)
	}
}

// Scenario 1, variants: with no secondary check the primary alone decides
// and the handler sees "-1 false" for it (as the original); a handler
// that fails makes fstaidd exit 11 with the failure in the record.
func TestScenario01Variants(t *testing.T) {
	needHarness(t)
	t.Run("no-secondary", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 2\n", primaryCurl))
		tp.target.stop()
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "7", "false", "-1", "false")
		wantEnv(t, c, "FSTAID_SECONDARY_EXIT", "-1", "FSTAID_SECONDARY_TIMED_OUT", "false")
		r := wantDoneRecord(t, s, d, "auto")
		if r.Event.Secondary.ExitStatus != -1 || r.Event.Secondary.TimedOut {
			t.Errorf("record secondary = %+v, want exit -1, not timed out", r.Event.Secondary)
		}
	})
	t.Run("target-host-goes-silent", func(t *testing.T) {
		// The whole host dies: its links go down at its end, so packets
		// vanish without a refusal (no netem here: a veth whose peer is
		// down drops silently). Both checks time out: "-1 true -1 true".
		newTopology(t, true)
		s := newScenario(t)
		primary := "[primary]\ncommand = \"curl -s -f http://target/\"\ntimeout = 0.5\n"
		secondary := "[secondary]\ncommand = \"curl -s -f -x http://bastion:3128 http://target/\"\ntimeout = 0.5\n"
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 2\n", primary+secondary+selfCurl))
		linkDown(t, "target", "t-m")
		linkDown(t, "target", "t-b")
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "-1", "true", "-1", "true")
		wantEnv(t, c, "FSTAID_PRIMARY_TIMED_OUT", "true", "FSTAID_SECONDARY_TIMED_OUT", "true", "FSTAID_SELF_EXIT", "0")
		r := wantDoneRecord(t, s, d, "auto")
		if !r.Event.Primary.TimedOut || !r.Event.Secondary.TimedOut {
			t.Errorf("record event = %+v, want both checks timed out", r.Event)
		}
	})
	t.Run("handler-fails-exit-11", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(0, 3)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		tp.target.stop()
		wantExit(t, d, 20*time.Second, exitHandlerFailed)
		s.oneCall()
		r := s.readRecord()
		if r.State != "handler-failed" || len(r.Handlers) != 1 || !strings.Contains(r.Handlers[0].Error, "3") {
			t.Errorf("record = %+v, want handler-failed with the handler's exit status 3", r)
		}
		wantLog(t, d.logText(), "a handler failed")
	})
	t.Run("native-tcp-and-http-status-in-env", func(t *testing.T) {
		// Native checks report 0/1; the HTTP status and the error text go
		// to the environment and the record, not argv.
		tp := newTopology(t, true)
		s := newScenario(t)
		primary := "[primary]\ntcp = \"target:80\"\ntimeout = 1\n"
		d := armed(t, s.writeConfig("interval = 0.2\n", primary+secondaryHTTP))
		tp.target.stop()
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "1", "false", "1", "false")
		wantEnv(t, c, "FSTAID_SECONDARY_HTTP_STATUS", "502")
		wantEnvSet(t, c, "FSTAID_PRIMARY_ERROR", "FSTAID_SECONDARY_ERROR")
		r := wantDoneRecord(t, s, d, "auto")
		if r.Event.Secondary.HTTPStatus != 502 || r.Event.Primary.Error == "" {
			t.Errorf("record event = %+v, want the bastion's 502 and the primary's error", r.Event)
		}
	})
	t.Run("native-checks-ignore-HTTP_PROXY-and-keep-alive", func(t *testing.T) {
		// A proxy from the environment would move the vantage point: the
		// native checks must not use it (it points at a closed port).
		tp := newTopology(t, true)
		s := newScenario(t)
		cfg := s.writeConfig("interval = 0.2\n", primaryHTTP)
		d := startDaemonEnv(t, "monitor", cfg, []string{"HTTP_PROXY=http://" + bastionIP + ":9", "http_proxy=http://" + bastionIP + ":9"})
		d.waitReady()
		st := d.waitStatus(15*time.Second, "armed despite HTTP_PROXY", func(st *status) bool { return st.State == "armed" })
		if st.LastRound == nil || st.LastRound.Primary == nil || !st.LastRound.Primary.Passed {
			t.Errorf("last round = %+v, want the primary passed directly", st.LastRound)
		}
		d.waitStatus(15*time.Second, "5 rounds", func(st *status) bool { return st.Rounds >= 6 })
		// A fresh connection per check: a kept-alive connection could
		// hide a dead target.
		if req, conns := tp.targetCount("requests"), tp.targetCount("conns"); req == 0 || conns < req {
			t.Errorf("the target saw %d requests on %d connections: want a new connection for every check", req, conns)
		}
		d.signal(syscall.SIGTERM)
		wantExit(t, d, 10*time.Second, exitStopped)
		s.noCalls()
	})
	t.Run("handler-times-out-exit-11", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(30*time.Second, 0)
		s.handlerTimeout = "1"
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		tp.target.stop()
		wantExit(t, d, 20*time.Second, exitHandlerFailed)
		c := s.oneCall()
		if c.finished {
			t.Errorf("the handler ran to its end despite its 1s timeout")
		}
		r := s.readRecord()
		if r.State != "handler-failed" || len(r.Handlers) != 1 || !r.Handlers[0].TimedOut {
			t.Errorf("record = %+v, want handler-failed with the handler timed out", r)
		}
		// The handler's whole process group was killed: its sleep too.
		b, _ := os.ReadFile(filepath.Join(s.calls, "call.1", "pid"))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if alive(pid) {
				t.Errorf("the timed-out handler (pid %d) still runs", pid)
			}
			if live := groupMembers(pid); len(live) > 0 {
				t.Errorf("processes %v of the timed-out handler's group %d still run", live, pid)
			}
		}
	})
}

// Scenario 1, the whole story: the handler moves the service address to
// the standby (fence the old active, move the address, re-point routes);
// afterwards the service answers again, from the standby, both from the
// monitor and through the bastion.
func TestScenario01AddressMovesToStandby(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	tp.addStandby()
	s := newScenario(t)
	s.handlerAction = moveToStandby
	s.writeHandler(0, 0)
	d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl+selfCurl))
	if got := fetch(t, "monitor", "http://"+targetIP+"/", ""); got != "target ok" {
		t.Fatalf("before the failover the service says %q, want target ok", got)
	}
	tp.target.stop()
	wantExit(t, d, 20*time.Second, exitFailedOver)
	wantArgv(t, s.oneCall(), "7", "false", "22", "false")
	wantDoneRecord(t, s, d, "auto")
	if got := fetch(t, "monitor", "http://"+targetIP+"/", ""); got != "standby ok" {
		t.Errorf("after the failover the service says %q from the monitor, want standby ok", got)
	}
	if got := fetch(t, "monitor", "http://"+targetIP+"/", "http://"+bastionIP+":"+proxyPort); got != "standby ok" {
		t.Errorf("after the failover the service says %q through the bastion, want standby ok", got)
	}
}

// fetch GETs url from network namespace ns (through proxy if set) and
// returns the trimmed body, or the error text.
func fetch(t *testing.T, ns, target, proxy string) string {
	t.Helper()
	c := httpClientIn("/run/netns/" + ns)
	c.Timeout = 5 * time.Second
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			t.Fatal(err)
		}
		c.Transport.(*http.Transport).Proxy = http.ProxyURL(u)
	}
	resp, err := c.Get(target)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

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

// Scenario 4: a flapping target (every third request fails) for 60
// rounds: each round retries within maxattempts, so there is never a
// failover.
func TestScenario04Flapping(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	d := armed(t, s.writeConfig("interval = 0.05\nmaxattempts = 3\n", primaryCurl+secondaryCurl+selfCurl))
	tp.setTarget("flap=3")
	st, _ := d.status()
	first := st.Rounds
	start := time.Now()
	d.waitStatus(60*time.Second, "60 rounds against the flapping target", func(st *status) bool {
		return st.Rounds >= first+60
	})
	// Rounds start every interval, start to start: never faster. (Measured
	// between two /status reads, so allow two intervals of slack.)
	if took := time.Since(start); took < 57*50*time.Millisecond {
		t.Errorf("60 rounds at interval 0.05 took %v: rounds started faster than the interval", took)
	} else {
		t.Logf("60 flapping rounds took %v", took)
	}
	if f := tp.targetCount("failures"); f < 15 {
		t.Errorf("the target failed only %d requests: it did not flap", f)
	}
	st, _ = d.status()
	if st == nil || st.State != "armed" {
		t.Errorf("after 60 flapping rounds: %+v, want armed", st)
	}
	s.noCalls()
	s.noLock()
	if n := countLines(d.logText(), "event=check-failed"); n < 15 {
		t.Errorf("the log shows %d failed attempts, want the flapping to show", n)
	}
	// The metrics show it too.
	code, metrics, err := d.request("GET", "/metrics")
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /metrics: %d %v", code, err)
	}
	for _, want := range []string{`fstaid_rounds_total{verdict="healthy"}`, `fstaid_check_results_total{check="primary",result="pass"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
	d.signal(syscall.SIGTERM)
	wantExit(t, d, 10*time.Second, exitStopped)
}

// Scenario 5: the target answers, but slower than the check's timeout:
// that is a failure (timed out, exit -1). With the secondary healthy (a
// longer timeout through the bastion) there is no failover; with the
// secondary timing out too, the handler sees "-1 true -1 true".
func TestScenario05SlowTarget(t *testing.T) {
	needHarness(t)
	const primary = "[primary]\nhttp = \"http://target/\"\ntimeout = 0.4\n"
	t.Run("secondary-healthy", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		secondary := "[secondary]\nhttp = \"http://target/\"\nproxy = \"http://bastion:3128\"\ntimeout = 4\n"
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 2\n", primary+secondary))
		tp.setTarget("slow=1.2s")
		st := d.waitStatus(20*time.Second, "a round with verdict secondary-alive", func(st *status) bool {
			return st.LastRound != nil && st.LastRound.Verdict == "secondary-alive"
		})
		if p := st.LastRound.Primary; p == nil || !p.TimedOut || p.ExitStatus != -1 || p.Passed {
			t.Errorf("primary of a slow target = %+v, want timed out, exit -1", p)
		}
		if sec := st.LastRound.Secondary; sec == nil || !sec.Passed {
			t.Errorf("secondary = %+v, want passed", sec)
		}
		first := st.Rounds
		d.waitStatus(20*time.Second, "2 more rounds", func(st *status) bool { return st.Rounds >= first+2 })
		s.noCalls()
		s.noLock()
		d.signal(syscall.SIGTERM)
		wantExit(t, d, 10*time.Second, exitStopped)
	})
	t.Run("secondary-slow-too", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		secondary := "[secondary]\nhttp = \"http://target/\"\nproxy = \"http://bastion:3128\"\ntimeout = 0.4\n"
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 2\n", primary+secondary))
		tp.setTarget("slow=3s")
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "-1", "true", "-1", "true")
		wantEnv(t, c, "FSTAID_PRIMARY_TIMED_OUT", "true", "FSTAID_SECONDARY_TIMED_OUT", "true", "FSTAID_PRIMARY_ATTEMPTS", "2")
		r := wantDoneRecord(t, s, d, "auto")
		if !r.Event.Primary.TimedOut || r.Event.Primary.ExitStatus != -1 || !r.Event.Secondary.TimedOut {
			t.Errorf("record event = %+v, want both checks timed out (-1)", r.Event)
		}
	})
}

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

// groupMembers returns the live (not zombie) processes of process group
// pgid. (kill(-pgid, 0) would count zombies: killed grandchildren are
// reparented to the harness, which does not reap them all.)
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid pgrp ...
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
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

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func procComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// reapZombies waits for the given pids if they were reparented to us
// (the harness is PID 1 of its pid namespace): only these, never any
// pid os/exec waits for.
func reapZombies(pids []int) {
	for _, pid := range pids {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// Scenario 7: 100 concurrent POST /fail. While the loop is failing over,
// every request gets 409 with the record and the handler runs once; with
// a healthy target, exactly one request fails over and 99 get 409.
func TestScenario07ConcurrentFail(t *testing.T) {
	needHarness(t)
	const n = 100
	post := func(d *daemon) []int {
		codes := make([]int, n)
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := d.request("POST", "/fail")
				if err != nil {
					codes[i], bodies[i] = -1, []byte(err.Error())
					return
				}
				codes[i], bodies[i] = code, body
			}()
		}
		wg.Wait()
		for i, code := range codes {
			if code == http.StatusConflict || code == http.StatusOK {
				var fr failResponse
				if err := json.Unmarshal(bodies[i], &fr); err != nil || fr.Record == nil {
					t.Errorf("POST /fail %d: %d with body %s: want the record", i, code, bodies[i])
				}
			}
		}
		return codes
	}
	count := func(codes []int, want int) int {
		k := 0
		for _, c := range codes {
			if c == want {
				k++
			}
		}
		return k
	}

	t.Run("while-the-loop-fails-over", func(t *testing.T) {
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(2*time.Second, 0)
		d := armed(t, s.writeConfig("interval = 0.2\nmaxattempts = 1\n", primaryCurl+secondaryCurl))
		tp.target.stop()
		waitFor(t, 15*time.Second, "the loop's handler to start", func() bool {
			_, err := os.Stat(filepath.Join(s.calls, "call.1"))
			return err == nil
		})
		codes := post(d)
		if k := count(codes, http.StatusConflict); k != n {
			t.Errorf("%d of %d concurrent POST /fail got 409, want all (codes %v)", k, n, codes)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "7", "false", "22", "false")
		wantDoneRecord(t, s, d, "auto")
	})
	t.Run("client-disconnects", func(t *testing.T) {
		// A client that gives up must not cut the failover in half.
		newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(1500*time.Millisecond, 0)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", d.base+"/fail", nil)
		req.SetBasicAuth(authUser, authPass)
		if resp, err := d.client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("POST /fail answered %d within 300ms, before a 1.5s handler finished", resp.StatusCode)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		if c := s.oneCall(); !c.finished {
			t.Errorf("the handler was cut short when the client disconnected")
		}
		wantDoneRecord(t, s, d, "manual")
	})
	t.Run("two-monitors-one-lock", func(t *testing.T) {
		// Two fstaidd watch the same target with the same lock file
		// (same port, so the same fstaid.<port>.lock; different listen
		// addresses): both see it die, one takes the lock, the handler
		// runs once.
		tp := newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(500*time.Millisecond, 0)
		cfg1 := s.writeConfig("interval = 0.1\nmaxattempts = 1\n", primaryCurl)
		cfg2 := filepath.Join(s.dir, "second", "fstaidd.toml")
		os.MkdirAll(filepath.Dir(cfg2), 0o755)
		b, _ := os.ReadFile(cfg1)
		writeFile(t, cfg2, strings.Replace(string(b), "[global]\n", "[global]\nlisten = \"127.0.0.1:8081\"\n", 1))
		d1 := armed(t, cfg1)
		d2 := startDaemon(t, "monitor", cfg2)
		d2.base = "http://127.0.0.1:8081"
		d2.waitReady()
		d2.waitStatus(15*time.Second, "the second monitor armed", func(st *status) bool { return st.State == "armed" })
		tp.target.stop()
		c1, c2 := d1.wait(t, 20*time.Second), d2.wait(t, 20*time.Second)
		if (c1 == exitFailedOver) == (c2 == exitFailedOver) {
			t.Errorf("exit statuses %d and %d: want exactly one monitor to fail over (10)", c1, c2)
		}
		if c1 != exitFailedOver && c1 != exitLocked || c2 != exitFailedOver && c2 != exitLocked {
			t.Errorf("exit statuses %d and %d: the one that lost the lock should report it (12)", c1, c2)
		}
		s.oneCall()
		if r := s.readRecord(); r.State != "done" || (r.PID != d1.cmd.Process.Pid && r.PID != d2.cmd.Process.Pid) {
			t.Errorf("record = %+v, want done by one of the two", r)
		}
	})
	t.Run("racing-each-other", func(t *testing.T) {
		newTopology(t, true)
		s := newScenario(t)
		s.writeHandler(500*time.Millisecond, 0)
		d := armed(t, s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl))
		codes := post(d)
		if ok, conflict := count(codes, http.StatusOK), count(codes, http.StatusConflict); ok != 1 || conflict != n-1 {
			t.Errorf("concurrent POST /fail: %d got 200 and %d got 409, want 1 and %d (codes %v)", ok, conflict, n-1, codes)
		}
		wantExit(t, d, 20*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "1", "false", "1", "false")
		wantEnv(t, c, "FSTAID_REASON", "manual")
		wantDoneRecord(t, s, d, "manual")
	})
}

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

// Scenario 9: start-up refusals, each with its exit status and one log
// line naming the cause; nothing is checked and no handler runs.
func TestScenario09StartupRefusals(t *testing.T) {
	needHarness(t)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, s *scenario) (global, sections string)
		want    int
		says    []string
	}{
		{
			name: "lock-present-original-empty-file",
			prepare: func(t *testing.T, s *scenario) (string, string) {
				if err := os.WriteFile(s.lockPath(), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return "interval = 0.2\n", primaryCurl + secondaryCurl
			},
			want: exitLocked,
			says: []string{"refusing to start", "fstaid." + daemonPort + ".lock", "bare lock file"},
		},
		{
			name: "lock-dir-read-only",
			prepare: func(t *testing.T, s *scenario) (string, string) {
				// Root ignores file modes: make it a read-only mount (in
				// the harness's private mount namespace).
				run(t, "mount", "--bind", s.lockDir, s.lockDir)
				t.Cleanup(func() { exec.Command("umount", s.lockDir).Run() })
				run(t, "mount", "-o", "remount,bind,ro", s.lockDir)
				return "interval = 0.2\n", primaryCurl + secondaryCurl
			},
			want: exitConfig,
			says: []string{"lock"},
		},
		{
			name: "handler-missing",
			prepare: func(t *testing.T, s *scenario) (string, string) {
				s.handler = filepath.Join(s.dir, "no-such-handler.sh")
				return "interval = 0.2\n", primaryCurl + secondaryCurl
			},
			want: exitConfig,
			says: []string{"[handler] command", "no-such-handler.sh"},
		},
		{
			name: "port-in-use-70",
			prepare: func(t *testing.T, s *scenario) (string, string) {
				// Something else holds the port: 70 (EX_SOFTWARE), which
				// systemd restarts, unlike a configuration error.
				ctrl := filepath.Join(s.dir, "squatter")
				os.Mkdir(ctrl, 0o755)
				p := startProc(t, "squatter", "monitor", filepath.Join(s.dir, "squatter.log"),
					[]string{envRole + "=target"}, selfBin, "0.0.0.0:"+daemonPort, ctrl)
				waitReady(t, p, filepath.Join(ctrl, "ready"))
				return "interval = 0.2\n", primaryCurl + secondaryCurl
			},
			want: 70,
			says: []string{"cannot listen", ":" + daemonPort, "address already in use"},
		},
		{
			name: "bad-config",
			prepare: func(t *testing.T, s *scenario) (string, string) {
				return "interval = -1\nmaxattempt = 3\n", primaryCurl + "[secondary]\ntimeout = 1\n"
			},
			want: exitConfig,
			says: []string{"3 problems", "[global] maxattempt: unknown key (did you mean", "maxattempts", "[global] interval", "[secondary] command"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopology(t, true)
			s := newScenario(t)
			global, sections := tc.prepare(t, s)
			d := startDaemon(t, "monitor", s.writeConfig(global, sections))
			wantExit(t, d, 15*time.Second, tc.want)
			log := d.logText()
			t.Logf("fstaidd exited %d and said:\n%s", tc.want, log)
			for _, want := range tc.says {
				if !strings.Contains(log, want) {
					t.Errorf("the log does not name the cause %q:\n%s", want, log)
				}
			}
			if errs := countLines(log, "level=ERROR"); errs == 0 {
				t.Errorf("no error line in the log:\n%s", log)
			}
			s.noCalls()
			if tc.want != exitLocked {
				s.noLock()
			}
			if n := tp.targetCount("requests"); n != 0 {
				t.Errorf("a refused start checked the target %d times, want none", n)
			}
		})
	}
}

// Scenario 9, the operator's pre-flight: `fstaidd check` runs each check
// once from the monitor and reports the lock directory and lock state,
// so the refusals above can be seen before starting the daemon.
func TestScenario09CheckTool(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	cfg := s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl+selfCurl)
	check := func(wantExit int, want ...string) {
		t.Helper()
		out, code := fstaiddTool(t, "check", "-config", cfg)
		if code != wantExit {
			t.Errorf("fstaidd check: exit %d, want %d\n%s", code, wantExit, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("fstaidd check does not say %q:\n%s", w, out)
			}
		}
	}
	// The scenario's lock directory is under /tmp: check must flag it.
	check(1, "self check", "primary check", "secondary check", "PASS", "directory writable",
		"free: no failover record", "1 problem(s) found")
	tp.target.stop()
	check(1, `primary check "curl -s -f http://target/": FAIL`, "exit 7", "3 problem(s) found")
	if err := os.WriteFile(s.lockPath(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check(1, "LOCKED", "exit 12")
	s.noCalls()
}

// Scenario 10: a config written in the original fstaid's format (integer
// seconds, every key it knew, the curl checks of its example, [[user]])
// and a handler written to the original's argv contract work unchanged.
func TestScenario10OriginalConfig(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	handler := filepath.Join(s.dir, "failover.sh")
	// In the style of the original's example handler: four positional
	// arguments, numbers and true/false, and nothing else relied on.
	script := fmt.Sprintf(`#!/bin/sh
[ $# -eq 4 ] || { echo "want 4 arguments, got $#: $*" >&2; exit 64; }
primary_exit=$1 primary_timedout=$2 secondary_exit=$3 secondary_timedout=$4
case "$primary_exit$secondary_exit" in *[!0-9-]*) echo "exit statuses must be integers" >&2; exit 64;; esac
case "$primary_timedout $secondary_timedout" in
  "true true"|"true false"|"false true"|"false false") ;;
  *) echo "timed-out flags must be true or false" >&2; exit 64;;
esac
d=%q
mkdir "$d/call.1" || exit 1
printf '%%s\n' "$@" > "$d/call.1/argv"
env | grep '^FSTAID_' | sort > "$d/call.1/env"
cat %q > "$d/call.1/lock"
echo "moved the address away from the target (primary=$primary_exit/$primary_timedout secondary=$secondary_exit/$secondary_timedout)"
`, s.calls, s.lockPath())
	if err := os.WriteFile(handler, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(s.dir, "fstaid.log")
	cfg := fmt.Sprintf(`# fstaid.toml, in the original fstaid's format
[global]
port = 8080
interval = 1
maxattempts = 3
attempt_interval = 0
lockdir = %q
log = %q
mode = "release"
continue_if_self_check_failed = false

[handler]
command = %q
timeout = 300

[primary]
command = "curl -s -f target"
timeout = 3

[secondary]
command = "curl -s -f -x bastion:3128 target"
timeout = 3

[self]
command = "curl -s -f bastion:3128"
timeout = 3

[[user]]
userid = "ops"
password = "s3cret"
`, s.lockDir, logFile, handler)
	cfgPath := filepath.Join(s.dir, "fstaid.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := armed(t, cfgPath)

	// The original's HTTP API: /ping without auth, the rest behind it.
	resp, err := d.client.Get(d.base + "/ping")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /ping without auth: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := d.client.Get(d.base + "/status"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status without auth: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, _, err := d.request("GET", "/fail"); err != nil || code != http.StatusMethodNotAllowed {
		t.Errorf("GET /fail: %d %v, want 405 (a GET must never fail over)", code, err)
	}

	// With [[user]], the endpoint is reachable from other hosts (the
	// original's remote /fail), behind auth.
	remote := httpClientIn("/run/netns/bastion")
	req, _ := http.NewRequest("GET", "http://10.231.2.1:8080/status", nil)
	req.SetBasicAuth(authUser, "wrong")
	if resp, err := remote.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status from the bastion with a wrong password: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	req.SetBasicAuth(authUser, authPass)
	if resp, err := remote.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /status from the bastion with the password: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	// logrotate: move the log away, SIGHUP, and fstaidd writes a new one.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "fstaidd to reopen its log on SIGHUP", func() bool {
		_, err := os.Stat(logFile)
		return err == nil
	})

	tp.target.stop()
	wantExit(t, d, 20*time.Second, exitFailedOver)
	c := s.oneCall()
	wantArgv(t, c, "7", "false", "22", "false")
	wantRecordBeforeHandler(t, c, "auto")
	wantDoneRecord(t, s, d, "auto")
	// [global] log is where the log went: before the rotation, and after.
	old, _ := os.ReadFile(logFile + ".1")
	wantLog(t, string(old), "msg=armed")
	b, _ := os.ReadFile(logFile)
	wantLog(t, string(b), "target is dead: failing over", "failover done")
}

// Scenario 10, variant: without [[user]] the endpoint binds loopback
// only: the monitor's own host can fail over, other hosts cannot reach it.
func TestScenario10NoUsersLoopbackOnly(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	cfg := s.writeConfig("interval = 0.2\n", primaryCurl)
	b, _ := os.ReadFile(cfg)
	noUsers, _, _ := strings.Cut(string(b), "[[user]]")
	writeFile(t, cfg, noUsers)
	d := armed(t, cfg)
	remote := httpClientIn("/run/netns/bastion")
	remote.Timeout = 3 * time.Second
	if resp, err := remote.Get("http://10.231.2.1:8080/ping"); err == nil {
		resp.Body.Close()
		t.Errorf("with no [[user]], the bastion reached fstaidd (%d): it must listen on loopback only", resp.StatusCode)
	}
	if resp, err := d.client.Get(d.base + "/ping"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /ping on loopback: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	d.signal(syscall.SIGTERM)
	wantExit(t, d, 10*time.Second, exitStopped)
}

// Scenario 11: the target is already dead at start-up. fstaidd serves
// unarmed (READY=1, STATUS= and /status say why), never fails over by
// itself, and a manual POST /fail still fails over. With startup_check =
// "exit" it exits 13 instead, as the original did.
func TestScenario11DeadAtStartup(t *testing.T) {
	needHarness(t)
	t.Run("wait", func(t *testing.T) {
		tp := newTopology(t, true)
		tp.target.stop()
		s := newScenario(t)
		d := startDaemon(t, "monitor", s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl+selfCurl))
		d.waitReady()
		st := d.waitStatus(10*time.Second, "state unarmed", func(st *status) bool { return st.State == "unarmed" })
		if st.Armed || !strings.Contains(st.Reason, "primary check failed") {
			t.Errorf("/status = %+v, want unarmed with the primary check as the reason", st)
		}
		waitFor(t, 5*time.Second, "STATUS=unarmed: ...", func() bool {
			line, ok := d.notify.has("STATUS=unarmed:")
			return ok && strings.Contains(line, "primary")
		})
		// `fstaidd status` (the operator's tool) says so too.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cli := exec.CommandContext(ctx, "ip", "netns", "exec", "monitor", fstaiddBin, "status", "-config", filepath.Join(s.dir, "fstaidd.toml"))
		cli.Env = cleanEnv()
		out, err := cli.CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), `"state": "unarmed"`) {
			t.Errorf("fstaidd status: %v\n%s\nwant state unarmed", err, out)
		}
		// Several intervals: still unarmed, no failover.
		first := st.Rounds
		st = d.waitStatus(10*time.Second, "5 more start-up rounds", func(st *status) bool { return st.Rounds >= first+5 })
		if st.State != "unarmed" {
			t.Errorf("state = %s, want still unarmed", st.State)
		}
		s.noCalls()
		s.noLock()

		code, body, err := d.request("POST", "/fail?exit=5")
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST /fail while unarmed: %d %v %s, want 200", code, err, body)
		}
		var fr failResponse
		if err := json.Unmarshal(body, &fr); err != nil || !fr.Accepted || fr.Record == nil || fr.Record.State != "done" {
			t.Errorf("POST /fail answer = %s, want accepted with the done record", body)
		}
		wantExit(t, d, 15*time.Second, exitFailedOver)
		c := s.oneCall()
		wantArgv(t, c, "5", "false", "5", "false")
		wantEnv(t, c, "FSTAID_REASON", "manual")
		if !strings.HasPrefix(c.env["FSTAID_REQUESTED_BY"], authUser+"@") {
			t.Errorf("FSTAID_REQUESTED_BY = %q, want %s@<address>", c.env["FSTAID_REQUESTED_BY"], authUser)
		}
		wantRecordBeforeHandler(t, c, "manual")
		wantDoneRecord(t, s, d, "manual")
	})
	t.Run("fstaidd-fail-tool", func(t *testing.T) {
		// The operator's `fstaidd fail` finds the daemon and its user
		// from the config, as the README says.
		tp := newTopology(t, true)
		tp.target.stop()
		s := newScenario(t)
		cfg := s.writeConfig("interval = 0.2\n", primaryCurl+secondaryCurl)
		d := startDaemon(t, "monitor", cfg)
		d.waitReady()
		d.waitStatus(10*time.Second, "state unarmed", func(st *status) bool { return st.State == "unarmed" })
		out, code := fstaiddTool(t, "fail", "-config", cfg, "-exit", "3")
		if code != 0 || !strings.Contains(out, "200") {
			t.Errorf("fstaidd fail -exit 3: exit %d\n%s\nwant 0 and the 200 answer", code, out)
		}
		wantExit(t, d, 15*time.Second, exitFailedOver)
		wantArgv(t, s.oneCall(), "3", "false", "3", "false")
		wantDoneRecord(t, s, d, "manual")
		out, code = fstaiddTool(t, "status", "-config", cfg)
		if !strings.Contains(out, "LOCKED") {
			t.Errorf("fstaidd status with the daemon down: exit %d\n%s\nwant the lock shown as LOCKED", code, out)
		}
	})
	t.Run("exit", func(t *testing.T) {
		tp := newTopology(t, true)
		tp.target.stop()
		s := newScenario(t)
		d := startDaemon(t, "monitor", s.writeConfig("interval = 0.2\nstartup_check = \"exit\"\n", primaryCurl+secondaryCurl+selfCurl))
		wantExit(t, d, 15*time.Second, exitStartupCheck)
		s.noCalls()
		s.noLock()
		wantLog(t, d.logText(), "start-up check failed")
	})
}

// /metrics counts every check run, each primary attempt included: against
// a target failing one request in three, rounds stay healthy (a later
// attempt passes) but the failed attempts show as
// fstaid_check_results_total{check="primary",result="fail"}, the
// flapping an operator wants to alert on. (Found by this suite: the
// daemon once counted only each round's last attempt.)
func TestMetricsCountEveryCheckRun(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	d := armed(t, s.writeConfig("interval = 0.05\nmaxattempts = 3\n", primaryCurl+secondaryCurl))
	tp.setTarget("flap=3")
	st, _ := d.status()
	first := st.Rounds
	d.waitStatus(30*time.Second, "20 flapping rounds", func(st *status) bool { return st.Rounds >= first+20 })
	failures := tp.targetCount("failures")
	if failures == 0 {
		t.Fatal("the flapping target never failed a request: the scenario tests nothing")
	}
	_, metrics, err := d.request("GET", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), `fstaid_check_results_total{check="primary",result="fail"}`) {
		t.Errorf("the target failed %d primary check runs, but /metrics counts none:\n%s", failures, grepLines(string(metrics), "fstaid_check_results_total"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
