package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &out)
	return code, out.String()
}

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

func TestUnlockCommand(t *testing.T) {
	e := newEnv(t, 0, "")
	if code, out := runCmd(t, "unlock", "-config", e.config); code != 0 || !strings.Contains(out, "nothing to unlock") {
		t.Errorf("unlock without a record = %d: %s", code, out)
	}
	rec := &fstaid.Record{State: fstaid.RecordDone, Host: "mon1", PID: 42, Time: time.Now(), Event: &fstaid.Event{Reason: fstaid.ReasonAuto, Target: "db1"}}
	if err := fstaid.NewFileLock(e.lockPath()).Acquire(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, "unlock", "-config", e.config)
	if code != 1 || !strings.Contains(out, "mon1") || !strings.Contains(out, "roles are swapped") || !strings.Contains(out, "Not removed") {
		t.Errorf("unlock without -yes = %d:\n%s", code, out)
	}
	if _, err := os.Stat(e.lockPath()); err != nil {
		t.Fatal("unlock without -yes removed the record")
	}
	if code, out := runCmd(t, "unlock", "-config", e.config, "-yes"); code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("unlock -yes = %d:\n%s", code, out)
	}
	if _, err := os.Stat(e.lockPath()); !os.IsNotExist(err) {
		t.Error("the record is still there")
	}
}

func TestFailAndStatusCommands(t *testing.T) {
	e := newEnv(t, 0, users)
	// Status of a stopped daemon falls back to the lock.
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1"`, 1)), 0o644)
	if code, out := runCmd(t, "status", "-config", e.config); code != 1 || !strings.Contains(out, "not reachable") || !strings.Contains(out, "free") {
		t.Errorf("status of a stopped daemon = %d:\n%s", code, out)
	}
	os.WriteFile(e.config, data, 0o644)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	addr := strings.TrimPrefix(r.url, "http://")
	if code, out := runCmd(t, "status", "-config", e.config, "-addr", addr); code != 0 || !strings.Contains(out, `"state": "armed"`) {
		t.Errorf("status = %d:\n%s", code, out)
	}
	// Credentials come from the config's first [[user]].
	code, out := runCmd(t, "fail", "-config", e.config, "-addr", addr, "-exit", "4")
	if code != 0 || !strings.Contains(out, "200 OK") {
		t.Errorf("fail = %d:\n%s", code, out)
	}
	if got := e.calls(); len(got) != 1 || got[0] != "4 false 4 false" {
		t.Errorf("handler calls %q", got)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("daemon exit %d", code)
	}
	if _, out := runCmd(t, "status", "-config", e.config, "-addr", addr); !strings.Contains(out, "LOCKED") {
		t.Errorf("status after the failover:\n%s", out)
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, out := runCmd(t, "version"); code != 0 || !strings.Contains(out, "fstaidd dev (commit") {
		t.Errorf("version = %d %q", code, out)
	}
	if code, out := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown command = %d %q", code, out)
	}
}

func TestDemo(t *testing.T) {
	code, out := runCmd(t, "demo")
	if code != 0 {
		t.Fatalf("demo = %d:\n%s", code, out)
	}
	for _, want := range []string{"killing the target", "target is dead: failing over", "secondary check failed",
		"handler called with: 1 false 1 false", "exited with status 10", `"state": "done"`} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestLogFileReopenedOnSIGHUP(t *testing.T) {
	e := newEnv(t, 0, "")
	logPath := filepath.Join(e.dir, "fstaidd.log")
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), "[global]\n", "[global]\nlog = \""+logPath+"\"\nmode = \"debug\"\n", 1)), 0o644)
	data, _ = os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(data), "mode = \"release\"\n", "", 1)), 0o644)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if fi, err := os.Stat(logPath); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new log file after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if old, _ := os.ReadFile(rotated); !strings.Contains(string(old), "serving") {
		t.Errorf("rotated log lacks the start-up lines")
	}
}
