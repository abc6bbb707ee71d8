package systemd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// journaldInner marks the copy of the test binary that runs inside its
// own mount namespace.
const journaldInner = "FSTAID_SYSTEMD_TEST_JOURNALD"

const journaldBin = "/lib/systemd/systemd-journald"

// TestJournaldReceivesFields logs through NewJournalHandler to a real
// systemd-journald and reads the entries back with journalctl.
//
// journald listens on the fixed /run/systemd/journal/socket, so the test
// gives it a private one: it re-runs itself under `unshare --mount
// --propagation private`, and there mounts a tmpfs on /run and binds a
// test directory over /var/log/journal. Nothing it mounts or starts is
// visible outside, and all of it goes when the inner process exits.
func TestJournaldReceivesFields(t *testing.T) {
	if os.Getenv(journaldInner) == "1" {
		journaldInside(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount a tmpfs on /run and start systemd-journald in a private mount namespace")
	}
	for _, bin := range []string{journaldBin, "unshare", "journalctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not found: %v", bin, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private",
		os.Args[0], "-test.run=^TestJournaldReceivesFields$", "-test.count=1", "-test.v")
	cmd.Env = childEnviron(journaldInner + "=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestJournaldReceivesFields")) {
		t.Fatalf("inside the mount namespace: %v\n%s", err, out)
	}
	t.Logf("inside the mount namespace:\n%s", out)
}

func journaldInside(t *testing.T) {
	dir := t.TempDir()
	mount(t, "tmpfs", "/run", "tmpfs", 0, "mode=0755,size=32m")
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, dir, "/var/log/journal", "", syscall.MS_BIND, "")

	var jlog bytes.Buffer
	jd := exec.Command(journaldBin)
	// Its own messages to stderr, not to the host's kernel log.
	jd.Env = append(os.Environ(), "SYSTEMD_LOG_TARGET=console")
	jd.Stdout, jd.Stderr = &jlog, &jlog
	// Should this process die without cleaning up, journald follows.
	jd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := jd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- jd.Wait() }()
	t.Cleanup(func() {
		jd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			jd.Process.Kill()
			<-exited
		}
		t.Logf("journald's own log:\n%s", jlog.String())
	})
	waitFor(t, "/run/systemd/journal/socket", exited)

	run := randomHex(t)
	l := slog.New(NewJournalHandler(&JournalOptions{
		Identifier:     "fstaidd-test",
		HandlerOptions: slog.HandlerOptions{Level: slog.LevelDebug},
	})).With("test_run", run)
	l.Error("check failed", "check", "primary", "exit_status", 1, "timed_out", true, "event", "round")
	l.Warn("unarmed", "reason", "start-up check failed: primary")
	l.WithGroup("http").Info("probe", "status", 503, "output", "line 1\nline 2")
	l.Debug("output", "check", "self")

	journalctl(t, "--flush")
	journalctl(t, "--sync")
	machineID, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := journalctl(t, "--directory="+filepath.Join(dir, strings.TrimSpace(string(machineID))),
			"-o", "json", "FSTAID_TEST_RUN="+run)
		entries = entries[:0]
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("journalctl -o json: %v: %s", err, sc.Bytes())
			}
			entries = append(entries, e)
		}
		if len(entries) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(entries) != 4 {
		t.Fatalf("read back %d entries from the persistent journal, want 4: %v", len(entries), entries)
	}

	pid := strconv.Itoa(os.Getpid())
	for i, want := range []map[string]any{{
		"MESSAGE":            "check failed test_run=" + run + " check=primary exit_status=1 timed_out=true event=round",
		"PRIORITY":           "3",
		"FSTAID_CHECK":       "primary",
		"FSTAID_EXIT_STATUS": "1",
		"FSTAID_TIMED_OUT":   "true",
		"FSTAID_EVENT":       "round",
	}, {
		"MESSAGE":       "unarmed test_run=" + run + ` reason="start-up check failed: primary"`,
		"PRIORITY":      "4",
		"FSTAID_REASON": "start-up check failed: primary",
	}, {
		"MESSAGE":            "probe test_run=" + run + ` http.status=503 http.output="line 1\nline 2"`,
		"PRIORITY":           "6",
		"FSTAID_HTTP_STATUS": "503",
		// A value with a newline goes in journald's binary form and
		// comes back whole.
		"FSTAID_HTTP_OUTPUT": "line 1\nline 2",
	}, {
		"MESSAGE":      "output test_run=" + run + " check=self",
		"PRIORITY":     "7",
		"FSTAID_CHECK": "self",
	}} {
		// Trusted fields, set by journald itself: the entry came from
		// this process over the native protocol.
		want["_TRANSPORT"] = "journal"
		want["_PID"] = pid
		want["SYSLOG_IDENTIFIER"] = "fstaidd-test"
		want["FSTAID_TEST_RUN"] = run
		for k, v := range want {
			if got := entries[i][k]; got != v {
				t.Errorf("entry %d: %s=%#v, want %#v", i, k, got, v)
			}
		}
	}
}

// mount mounts and registers the unmount. The namespace is private, so
// this never reaches the host's mounts.
func mount(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", source, target, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(target, 0); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

func waitFor(t *testing.T, path string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			t.Fatalf("journald exited before creating %s: %v", path, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 10s", path)
		}
	}
}

func journalctl(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("journalctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
