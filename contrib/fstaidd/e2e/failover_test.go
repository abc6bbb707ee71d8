package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The target dies: one failover, its record, its handler, and the
// service back on the standby.

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
