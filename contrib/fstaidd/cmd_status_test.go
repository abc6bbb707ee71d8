package main

import (
	"context"
	"os"
	"strings"
	"testing"

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
