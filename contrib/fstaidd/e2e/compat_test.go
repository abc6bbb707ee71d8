package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The original fstaid's config format, HTTP API and handler contract.

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
