package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fstaid/fstaid"
)

// fstaidd fail takes its credentials from the config's first [[user]]
// and fails the running daemon over.
func TestFailCommand(t *testing.T) {
	e := newEnv(t, 0, users)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	addr := strings.TrimPrefix(r.url, "http://")
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
}

// runFail runs `fstaidd fail` with stdin, against the daemon at r.
func runFail(t *testing.T, stdin io.Reader, config string, r *running, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	args = append([]string{"fail", "-config", config, "-addr", strings.TrimPrefix(r.url, "http://")}, args...)
	code := Run(context.Background(), args, stdin, &out, &out)
	return code, out.String()
}

// readRecord reads the failover record the file lock holds.
func (e *env) readRecord() *fstaid.Record {
	e.t.Helper()
	data, err := os.ReadFile(e.lockPath())
	if err != nil {
		e.t.Fatalf("no failover record: %v", err)
	}
	var rec fstaid.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		e.t.Fatalf("record %s: %v", data, err)
	}
	return &rec
}

// Issue 15: on a terminal, `fstaidd fail` asks first; "n" (or anything
// but y/yes) does nothing and exits 1; "y" fails over with -reason kept in
// the record next to who asked, and in the log; `fstaidd status` shows
// both. -yes asks nothing. A real pseudo-terminal and a real daemon.
func TestFailAsksOnATerminal(t *testing.T) {
	t.Setenv(passwordEnv, "")
	e := newEnv(t, 0, users)
	var log lockedBuffer
	r := e.startLogged(&log)
	r.waitState(t, fstaid.StateArmed)

	no := openPTY(t)
	no.master.Write([]byte("n\n"))
	code, out := runFail(t, no.tty, e.config, r)
	if code != exitNotDone || !strings.Contains(out, "Fail over db1 now, through the daemon at "+r.url+"?") || !strings.Contains(out, "[y/N]") ||
		!strings.Contains(out, "not confirmed; nothing was done") {
		t.Errorf("answered n: exit %d, want %d:\n%s", code, exitNotDone, out)
	}
	if c := e.calls(); len(c) != 0 {
		t.Fatalf("the handler ran after n: %q", c)
	}

	const reason = "db1 maintenance, ticket OPS-1234 — planned"
	yes := openPTY(t)
	yes.master.Write([]byte("y\n"))
	code, out = runFail(t, yes.tty, e.config, r, "-reason", reason, "-exit", "3")
	if code != 0 || !strings.Contains(out, "[y/N]") || !strings.Contains(out, "200 OK") {
		t.Fatalf("answered y: exit %d, want 0:\n%s", code, out)
	}
	if c := e.calls(); len(c) != 1 || c[0] != "3 false 3 false" {
		t.Errorf("handler calls %q, want one with exit 3", c)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("daemon exit %d, want %d", code, exitFailedOver)
	}
	rec := e.readRecord()
	if rec.Comment != reason || rec.Event == nil || !strings.HasPrefix(rec.Event.RequestedBy, "ops@127.0.0.1:") {
		t.Errorf("record comment %q, requested by %q; want %q by ops@127.0.0.1:...", rec.Comment, rec.Event.RequestedBy, reason)
	}
	if env, _ := os.ReadFile(e.handler + ".env"); strings.Contains(string(env), "OPS-1234") {
		t.Errorf("the reason reached the handler's environment:\n%s", env)
	}
	if !strings.Contains(log.String(), "manual failover requested") || !strings.Contains(log.String(), "OPS-1234") {
		t.Errorf("the log does not show the reason:\n%s", log.String())
	}
	_, out = runCmd(t, "status", "-config", e.config)
	if !strings.Contains(out, "requested by ops@127.0.0.1:") || !strings.Contains(out, "reason: "+reason) {
		t.Errorf("fstaidd status does not show who asked and why:\n%s", out)
	}
}

func TestFailYesAsksNothing(t *testing.T) {
	e := newEnv(t, 0, users)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	p := openPTY(t)
	code, out := runFail(t, p.tty, e.config, r, "-yes")
	if code != 0 || strings.Contains(out, "[y/N]") {
		t.Errorf("-yes on a terminal: exit %d, want 0 without a question:\n%s", code, out)
	}
	if c := e.calls(); len(c) != 1 {
		t.Errorf("handler calls %q, want one", c)
	}
}

// Issue 15: every outcome of `fstaidd fail` has its own exit status,
// each provoked for real against a daemon.
func TestFailExitStatuses(t *testing.T) {
	t.Setenv(passwordEnv, "")
	noStdin := strings.NewReader("")

	t.Run("handler failed", func(t *testing.T) {
		e := newEnv(t, 1, users)
		r := e.start()
		r.waitState(t, fstaid.StateArmed)
		if code, out := runFail(t, noStdin, e.config, r); code != exitFailHandlerFailed || !strings.Contains(out, "500") {
			t.Errorf("exit %d, want %d:\n%s", code, exitFailHandlerFailed, out)
		}
	})

	t.Run("already failed over", func(t *testing.T) {
		t.Setenv("FSTAID_TEST_HANDLER_SLEEP", "1")
		e := newEnv(t, 0, users)
		r := e.start()
		r.waitState(t, fstaid.StateArmed)
		first := make(chan int, 1)
		go func() {
			code, _ := runFail(t, noStdin, e.config, r)
			first <- code
		}()
		r.waitState(t, fstaid.StateFailingOver)
		code, out := runFail(t, noStdin, e.config, r)
		if code != exitAlreadyFailedOver || !strings.Contains(out, "409") || !strings.Contains(out, "re-arm with fstaidd unlock") {
			t.Errorf("second fail: exit %d, want %d:\n%s", code, exitAlreadyFailedOver, out)
		}
		if code := <-first; code != 0 {
			t.Errorf("first fail: exit %d, want 0", code)
		}
		if c := e.calls(); len(c) != 1 {
			t.Errorf("handler calls %q, want one", c)
		}
	})

	t.Run("lock unavailable", func(t *testing.T) {
		e := newEnv(t, 0, users)
		lockdir := filepath.Join(e.dir, "lock")
		os.Mkdir(lockdir, 0o755)
		data, _ := os.ReadFile(e.config)
		os.WriteFile(e.config, []byte(strings.Replace(string(data), "lockdir = "+quote(e.dir), "lockdir = "+quote(lockdir), 1)), 0o644)
		r := e.start()
		r.waitState(t, fstaid.StateArmed)
		// The lock directory becomes a file: no record can be written.
		os.Remove(lockdir)
		os.WriteFile(lockdir, nil, 0o644)
		code, out := runFail(t, noStdin, e.config, r)
		if code != exitLockUnavailable || !strings.Contains(out, "503") || !strings.Contains(out, `"outcome": "lock-unavailable"`) {
			t.Errorf("exit %d, want %d:\n%s", code, exitLockUnavailable, out)
		}
		if c := e.calls(); len(c) != 0 {
			t.Errorf("the handler ran without the lock: %q", c)
		}
	})

	t.Run("auth refused", func(t *testing.T) {
		e := newEnv(t, 0, users+"[[user]]\nuserid = \"ro\"\npassword = \"ro-pw\"\nrole = \"viewer\"\n")
		r := e.start()
		r.waitState(t, fstaid.StateArmed)
		t.Setenv(passwordEnv, "wrong")
		if code, out := runFail(t, noStdin, e.config, r); code != exitAuthRefused || !strings.Contains(out, "401") {
			t.Errorf("wrong password: exit %d, want %d:\n%s", code, exitAuthRefused, out)
		}
		t.Setenv(passwordEnv, "ro-pw")
		if code, out := runFail(t, noStdin, e.config, r, "-user", "ro"); code != exitAuthRefused || !strings.Contains(out, "403") {
			t.Errorf("a viewer: exit %d, want %d:\n%s", code, exitAuthRefused, out)
		}
		if c := e.calls(); len(c) != 0 {
			t.Errorf("handler calls %q, want none", c)
		}
	})

	t.Run("daemon unreachable", func(t *testing.T) {
		e := newEnv(t, 0, users)
		var out bytes.Buffer
		code := Run(context.Background(), []string{"fail", "-config", e.config, "-addr", "127.0.0.1:1"}, noStdin, &out, &out)
		if code != exitUnreachable || !strings.Contains(out.String(), "not reachable") || !strings.Contains(out.String(), "No failover began") {
			t.Errorf("exit %d, want %d:\n%s", code, exitUnreachable, out.String())
		}
	})

	t.Run("bad usage", func(t *testing.T) {
		e := newEnv(t, 0, users)
		r := e.start()
		r.waitState(t, fstaid.StateArmed)
		for _, reason := range []string{"two\nlines", strings.Repeat("x", maxReason+1), "\xff"} {
			if code, out := runFail(t, noStdin, e.config, r, "-reason", reason); code != exitUsage || !strings.Contains(out, "-reason") {
				t.Errorf("-reason %q: exit %d, want %d:\n%s", reason, code, exitUsage, out)
			}
		}
		if code, _ := runFail(t, noStdin, e.config, r, "-bogus"); code != exitUsage {
			t.Errorf("-bogus: exit %d, want %d", code, exitUsage)
		}
		// The daemon bounds the reason itself, whoever sends it.
		resp, body, err := requestForm(context.Background(), "POST", r.url+"/fail", "ops", "pw",
			url.Values{"reason": {strings.Repeat("x", maxReason+1)}})
		if err != nil || resp.StatusCode != 400 || !strings.Contains(string(body), "at most 512") {
			t.Errorf("POST /fail with a long reason = %v %v %s, want 400", resp.StatusCode, err, body)
		}
		if c := e.calls(); len(c) != 0 {
			t.Errorf("handler calls %q, want none", c)
		}
	})

	t.Run("bad config", func(t *testing.T) {
		e := newEnv(t, 0, users+"bogus = 1\n")
		var out bytes.Buffer
		if code := Run(context.Background(), []string{"fail", "-config", e.config}, noStdin, &out, &out); code != exitConfig {
			t.Errorf("exit %d, want %d:\n%s", code, exitConfig, out.String())
		}
	})
}

// The daemon's 503 while stopping, or while exiting on a bad config,
// means no failover began: like a daemon that did not answer.
func TestFailExitOfEveryAnswer(t *testing.T) {
	for _, tt := range []struct {
		status  int
		outcome string
		want    int
	}{
		{200, outcomeDone, 0},
		{409, outcomeLocked, exitAlreadyFailedOver},
		{500, outcomeHandlerFailed, exitFailHandlerFailed},
		{503, outcomeLockUnavailable, exitLockUnavailable},
		{503, outcomeStopping, exitUnreachable},
		{503, "", exitUnreachable},
		{401, "", exitAuthRefused},
		{403, "", exitAuthRefused},
		{400, "", exitNotDone},
		{405, "", exitNotDone},
	} {
		if got := failExit(tt.status, tt.outcome); got != tt.want {
			t.Errorf("failExit(%d, %q) = %d, want %d", tt.status, tt.outcome, got, tt.want)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
