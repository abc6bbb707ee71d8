//go:build unix

// Package model holds the Promela models of fstaid's failover protocol
// (see README.md); its test runs check.sh, which verifies them with spin.
package model

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestModel runs check.sh: the real model verifies clean and spin refutes
// every mutant. Without spin or gcc it skips, unless FSTAID_E2E_REQUIRE=1
// (CI), where their absence fails.
func TestModel(t *testing.T) {
	if testing.Short() {
		t.Skip("model check: skipped with -short")
	}
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("FSTAID_E2E_REQUIRE") == "1" {
				t.Fatalf("model check: %s not found and FSTAID_E2E_REQUIRE=1: %v", tool, err)
			}
			t.Skipf("model check: %s not found: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./check.sh")
	// check.sh runs spin, gcc and pan: stop the whole group at the timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("check.sh:\n%s", out)
	if err != nil {
		t.Fatalf("check.sh: %v", err)
	}
}
