package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Start-up: the refusals and their exit statuses, `fstaidd check`, and
// a target already dead at start-up.

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
		if err != nil || !strings.Contains(string(out), ": UNARMED since") {
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
