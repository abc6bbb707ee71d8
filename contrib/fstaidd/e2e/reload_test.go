package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Live reload: SIGHUP (systemctl reload's ExecReload=) re-reads the
// configuration of a running fstaidd.

// countingCheck writes a primary check command that counts its runs in
// dir/<name>.runs and then checks the target as primaryCurl does.
func countingCheck(t *testing.T, dir, name string) (section, runs string) {
	t.Helper()
	runs = filepath.Join(dir, name+".runs")
	script := filepath.Join(dir, name+".sh")
	body := fmt.Sprintf("#!/bin/sh\necho run >> %q\nexec curl -s -f http://target/\n", runs)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[primary]\ncommand = %q\ntimeout = 1\n", script), runs
}

func lineCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// lastReload is /status's reload.
type lastReload struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error"`
}

// reload sends SIGHUP and waits until /status reports a reload that
// started after it was sent.
func (d *daemon) reload(t *testing.T) lastReload {
	t.Helper()
	sent := time.Now()
	d.signal(syscall.SIGHUP)
	var got lastReload
	waitFor(t, 15*time.Second, "/status to show the reload", func() bool {
		code, body, err := d.request("GET", "/status")
		if err != nil || code != http.StatusOK {
			return false
		}
		var st struct {
			Reload *lastReload `json:"reload"`
		}
		if json.Unmarshal(body, &st) != nil || st.Reload == nil {
			return false
		}
		got = *st.Reload
		return got.Time.After(sent)
	})
	return got
}

// One daemon, several reloads: a new primary check, an invalid file, keys
// that cannot change, and a good file again. Each is answered RELOADING=1
// then READY=1; the armed state survives them all.
func TestReload(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	checkA, runsA := countingCheck(t, s.dir, "a")
	checkB, runsB := countingCheck(t, s.dir, "b")
	global := "interval = 0.2\nmaxattempts = 1\n"
	cfg := s.writeConfig(global, checkA+secondaryCurl)
	d := armed(t, cfg)
	waitFor(t, 5*time.Second, "check a to run", func() bool { return lineCount(runsA) > 0 })

	// 1. The primary check changes: b runs, a no longer does.
	s.writeConfig(global, checkB+secondaryCurl)
	if r := d.reload(t); !r.OK || r.Error != "" {
		t.Fatalf("reload with a new primary check: %+v", r)
	}
	waitFor(t, 5*time.Second, "the new check to run", func() bool { return lineCount(runsB) >= 2 })
	a := lineCount(runsA)
	waitFor(t, 5*time.Second, "the new check to run three more times", func() bool { return lineCount(runsB) >= 5 })
	if got := lineCount(runsA); got != a {
		t.Errorf("the old check ran %d more times after the new one took over", got-a)
	}
	msgs := strings.Split(d.notify.all(), " | ")
	reloading := -1
	for i, m := range msgs {
		if strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
			reloading = i
		}
	}
	if reloading < 0 || !strings.Contains(strings.Join(msgs[reloading+1:], "\n"), "READY=1") {
		t.Errorf("sd_notify: want RELOADING=1 with MONOTONIC_USEC, then READY=1; got %q", msgs)
	}

	// 2. An invalid file: nothing changes; /status and STATUS= say why.
	if err := os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "maxattempts = 1", "maxattempt = 1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.reload(t)
	if r.OK || !strings.Contains(r.Error, `[global] maxattempt: unknown key (did you mean "maxattempts"?)`) {
		t.Errorf("reload of an invalid file: %+v, want the unknown key named", r)
	}
	waitFor(t, 5*time.Second, "STATUS= to say the reload failed", func() bool {
		line, ok := d.notify.has("STATUS=armed: watching target; reload failed: ")
		return ok && strings.Contains(line, "maxattempt")
	})
	b := lineCount(runsB)
	waitFor(t, 5*time.Second, "the running check to go on", func() bool { return lineCount(runsB) >= b+3 })

	// 3. The lock directory and the port cannot change live.
	other := filepath.Join(s.dir, "lock2")
	os.Mkdir(other, 0o755)
	moved := strings.Replace(strings.Replace(mustRead(t, cfg), "maxattempt = 1", "maxattempts = 1", 1),
		"lockdir = \""+s.lockDir+"\"", "lockdir = \""+other+"\"", 1)
	moved = strings.Replace(moved, "port = "+daemonPort, "port = 8081", 1)
	if err := os.WriteFile(cfg, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	r = d.reload(t)
	if r.OK || !strings.Contains(r.Error, "cannot change without a restart (systemctl restart): [global] port, [global] listen, [global] lockdir") {
		t.Errorf("reload changing port and lockdir: %+v, want both named", r)
	}

	// 4. A good file again: the error is gone from /status and STATUS=.
	s.writeConfig(global, checkB+secondaryCurl)
	if r := d.reload(t); !r.OK || r.Error != "" {
		t.Errorf("reload back to a good file: %+v", r)
	}
	waitFor(t, 5*time.Second, "STATUS= without the reload error", func() bool {
		msgs := strings.Split(d.notify.all(), " | ")
		for i := len(msgs) - 1; i >= 0; i-- {
			if strings.HasPrefix(msgs[i], "STATUS=") {
				return msgs[i] == "STATUS=armed: watching target"
			}
		}
		return false
	})
	st, err := d.status()
	if err != nil || st.State != "armed" {
		t.Errorf("after the reloads: %+v %v, want armed", st, err)
	}
	if n := strings.Count(d.notify.all(), "RELOADING=1"); n != 4 {
		t.Errorf("%d RELOADING=1 for 4 reloads", n)
	}
	d.signal(syscall.SIGTERM)
	wantExit(t, d, 10*time.Second, exitStopped)
	s.noCalls()
	s.noLock()
}

// A reload while a failover's handler runs is not applied in the middle
// of it: it waits, and is refused once the monitor has failed over. The
// new check never runs.
func TestReloadDuringFailover(t *testing.T) {
	needHarness(t)
	newTopology(t, true)
	s := newScenario(t)
	s.writeHandler(3*time.Second, 0)
	checkA, _ := countingCheck(t, s.dir, "a")
	checkB, runsB := countingCheck(t, s.dir, "b")
	global := "interval = 0.2\nmaxattempts = 1\n"
	cfg := s.writeConfig(global, checkA+secondaryCurl)
	d := armed(t, cfg)

	failed := make(chan int, 1)
	go func() {
		code, _, _ := d.request("POST", "/fail")
		failed <- code
	}()
	waitFor(t, 10*time.Second, "the handler to start", func() bool {
		_, err := os.Stat(filepath.Join(s.calls, "call.1", "lock"))
		return err == nil
	})
	s.writeConfig(global, checkB+secondaryCurl)
	d.signal(syscall.SIGHUP)
	if code := <-failed; code != http.StatusOK {
		t.Errorf("POST /fail: %d", code)
	}
	wantExit(t, d, 20*time.Second, exitFailedOver)
	if c := s.oneCall(); !c.finished {
		t.Error("the handler was cut short")
	}
	log := d.logText()
	wantLog(t, log, "reload failed: the running configuration is unchanged", "the monitor has failed over")
	if n := lineCount(runsB); n != 0 {
		t.Errorf("the reloaded check ran %d times", n)
	}
	if i, j := strings.Index(log, "failover done"), strings.Index(log, "reload failed"); i < 0 || j < i {
		t.Errorf("the reload was answered before the failover ended (failover done at %d, reload failed at %d)", i, j)
	}
	if _, ok := d.notify.has("RELOADING=1"); !ok {
		t.Errorf("no RELOADING=1: %s", d.notify.all())
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
