package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// fstaidd status asks the running daemon, and falls back to the lock
// when the daemon does not answer.
func TestStatusCommand(t *testing.T) {
	e := newEnv(t, 0, users)
	// Status of a stopped daemon falls back to the lock.
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1"`, 1)), 0o644)
	if code, out := runCmd(t, "status", "-config", e.config); code != exitUnreachable || !strings.Contains(out, "not reachable") || !strings.Contains(out, "free") {
		t.Errorf("status of a stopped daemon = %d:\n%s", code, out)
	}
	os.WriteFile(e.config, data, 0o644)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	addr := strings.TrimPrefix(r.url, "http://")
	if code, out := runCmd(t, "status", "-config", e.config, "-addr", addr); code != 0 || !strings.Contains(out, "target db1: ARMED since") {
		t.Errorf("status = %d:\n%s", code, out)
	}
	if resp, body, err := request(context.Background(), "POST", r.url+"/fail", "ops", "pw"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /fail: %v %v %s", err, resp, body)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("daemon exit %d", code)
	}
	if _, out := runCmd(t, "status", "-config", e.config, "-addr", addr); !strings.Contains(out, "LOCKED") {
		t.Errorf("status after the failover:\n%s", out)
	}
}

// Issue 15: /status keeps the last rounds (a bounded ring, newest first)
// with each check's result and latency, and since when the state holds;
// `fstaidd status` summarises them for people, -json for machines.
func TestStatusShowsRecentRounds(t *testing.T) {
	e := newEnv(t, 0, users)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	// More rounds than the ring holds.
	var st statusResponse
	deadline := time.Now().Add(20 * time.Second)
	for st.Rounds < 2*recentRounds {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rounds", st.Rounds)
		}
		time.Sleep(20 * time.Millisecond)
		_, body, err := request(context.Background(), "GET", r.url+"/status", "ops", "pw")
		if err != nil {
			t.Fatal(err)
		}
		st = statusResponse{}
		json.Unmarshal(body, &st)
	}
	if len(st.RecentRounds) != recentRounds {
		t.Fatalf("%d recent rounds, want the ring's %d", len(st.RecentRounds), recentRounds)
	}
	for i, rd := range st.RecentRounds {
		if i > 0 && rd.Number != st.RecentRounds[i-1].Number-1 {
			t.Errorf("round %d follows round %d: want newest first, consecutive", rd.Number, st.RecentRounds[i-1].Number)
		}
		if rd.Primary == nil || !rd.Primary.Passed || rd.Primary.Duration <= 0 || rd.Verdict != fstaid.VerdictHealthy {
			t.Errorf("round %+v: want a healthy round with the primary's result and latency", rd)
		}
	}
	if st.Since.IsZero() || time.Since(st.Since) > time.Minute {
		t.Errorf("since %v: want when the monitor armed", st.Since)
	}

	addr := strings.TrimPrefix(r.url, "http://")
	code, out := runCmd(t, "status", "-config", e.config, "-addr", addr, "-rounds", "3")
	if code != 0 || !strings.Contains(out, "target db1: ARMED since ") || !strings.Contains(out, "failover record: none") {
		t.Errorf("fstaidd status = %d:\n%s", code, out)
	}
	roundLine := regexp.MustCompile(`(?m)^  #\d+ +\d\d:\d\d:\d\d\.\d{3}  healthy +primary pass [0-9.]+[µm]?s$`)
	if n := len(roundLine.FindAllString(out, -1)); n != 3 {
		t.Errorf("fstaidd status -rounds 3 shows %d round lines, want 3:\n%s", n, out)
	}

	code, out = runCmd(t, "status", "-config", e.config, "-addr", addr, "-json")
	var ts toolStatus
	if err := json.Unmarshal([]byte(out), &ts); code != 0 || err != nil || ts.Daemon == nil || ts.Daemon.State != fstaid.StateArmed ||
		len(ts.Daemon.RecentRounds) != recentRounds {
		t.Errorf("fstaidd status -json = %d, %v:\n%s", code, err, out)
	}
}

// The human summary of a failover record: who asked and why for a manual
// one, each check that ran for an automatic one, each handler.
func TestStatusShowsTheRecord(t *testing.T) {
	e := newEnv(t, 0, users)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	e.touch("dead")
	if code := r.wait(t); code != exitFailedOver {
		t.Fatalf("exit %d", code)
	}
	code, out := runCmd(t, "status", "-config", e.config, "-addr", strings.TrimPrefix(r.url, "http://"))
	for _, want := range []string{
		"daemon at " + r.url + ": not reachable",
		"lock " + e.lockPath() + ": LOCKED",
		"failover record: DONE, auto, taken ",
		"  checks: primary FAIL (exit 1) ",
		", 2 attempts",
		"  handler handler: ok in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fstaidd status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "secondary") {
		t.Errorf("fstaidd status shows the unconfigured secondary check:\n%s", out)
	}
}
