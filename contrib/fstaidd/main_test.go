package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestMain re-executes the test binary as fstaidd when FSTAIDD_TEST_MAIN
// is set: the socket-activation tests need a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("FSTAIDD_TEST_MAIN") != "" {
		args := strings.Split(os.Getenv("FSTAIDD_TEST_ARGS"), "\n")
		os.Exit(Run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Issue 15 (the operator's CLI): -h and --help list every subcommand and
// exit 0; the original's -version works; a subcommand's -h lists only its
// own flags and exits 0; a wrong flag is still an error.
func TestHelpAndVersion(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, h := range []string{"-h", "--help", "-help"} {
		code, out, _ := run(h)
		if code != 0 {
			t.Errorf("fstaidd %s: exit %d, want 0", h, code)
		}
		for _, sub := range []string{"check", "fail", "status", "unlock", "demo", "version", "-config"} {
			if !strings.Contains(out, sub) {
				t.Errorf("fstaidd %s does not mention %s:\n%s", h, sub, out)
			}
		}
	}
	if code, out, _ := run("-version"); code != 0 || !strings.HasPrefix(out, "fstaidd ") {
		t.Errorf("fstaidd -version: exit %d, %q", code, out)
	}
	code, out, _ := run("status", "-h")
	if code != 0 || !strings.Contains(out, "-addr") || strings.Contains(out, "-exit") || strings.Contains(out, "unlock") {
		t.Errorf("fstaidd status -h: exit %d, want 0 and only status's flags:\n%s", code, out)
	}
	if code, _, errs := run("status", "-bogus"); code != 2 || !strings.Contains(errs, "-bogus") {
		t.Errorf("fstaidd status -bogus: exit %d, %q; want 2 naming the flag", code, errs)
	}
	if code, _, _ := run("-bogus"); code != exitConfig {
		t.Errorf("fstaidd -bogus: exit %d, want %d (the daemon's usage error)", code, exitConfig)
	}
}

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &out)
	return code, out.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out := runCmd(t, "version"); code != 0 || !strings.Contains(out, "fstaidd dev (commit") {
		t.Errorf("version = %d %q", code, out)
	}
	if code, out := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown command = %d %q", code, out)
	}
}
