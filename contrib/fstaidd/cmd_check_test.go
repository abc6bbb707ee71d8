package main

import (
	"os"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	e := newEnv(t, 0, "[secondary]\ntcp = \"127.0.0.1:1\"\ntimeout = 1\n")
	code, out := runCmd(t, "check", "-config", e.config)
	// The secondary's port is closed: one problem, named.
	if code != 1 || !strings.Contains(out, "secondary check tcp 127.0.0.1:1: FAIL") || !strings.Contains(out, "primary check") ||
		!strings.Contains(out, "PASS") || !strings.Contains(out, "directory writable") || !strings.Contains(out, "free: no failover record") ||
		!strings.Contains(out, "handler: "+e.handler) {
		t.Errorf("check = %d:\n%s", code, out)
	}
	// The lock directory is t.TempDir(): not persistent.
	if !strings.Contains(out, "PROBLEM") || !strings.Contains(out, "temporary directory") {
		t.Errorf("check did not flag the temporary lock directory:\n%s", out)
	}
	os.WriteFile(e.lockPath(), nil, 0o644)
	if _, out := runCmd(t, "check", "-config", e.config); !strings.Contains(out, "LOCKED") || !strings.Contains(out, "exit 12") {
		t.Errorf("check with a lock:\n%s", out)
	}
	os.WriteFile(e.config, []byte("[global]\nport = 1\nmaxattempt = 2\n"), 0o644)
	if code, out := runCmd(t, "check", "-config", e.config); code != exitConfig || !strings.Contains(out, `did you mean "maxattempts"`) {
		t.Errorf("check of a bad config = %d:\n%s", code, out)
	}
}
