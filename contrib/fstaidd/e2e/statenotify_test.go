package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// State notifications: [notify] command runs on each transition, as
// keepalived runs a notify script.

// notifyCall is one run of the notify script, as it recorded it.
type notifyCall struct {
	argv []string
	env  map[string]string
}

// writeNotify writes a notify script that records each run (argv, the
// FSTAID_* environment) in dir/n.N, and returns its path.
func writeNotify(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "notify.sh")
	script := fmt.Sprintf(`#!/bin/sh
# e2e notify script: records each run, as a pager script would act on it.
d=%q
n=1
while ! mkdir "$d/n.$n" 2>/dev/null; do n=$((n+1)); done
env | grep '^FSTAID_' | sort > "$d/n.$n/env"
printf '%%s\n' "$@" > "$d/n.$n/argv"
`, dir)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// notifyCalls reads the runs of the script of writeNotify, in order.
func notifyCalls(dir string) []notifyCall {
	var calls []notifyCall
	for n := 1; ; n++ {
		d := filepath.Join(dir, "n."+strconv.Itoa(n))
		argv, err := os.ReadFile(filepath.Join(d, "argv")) // written last
		if err != nil {
			return calls
		}
		c := notifyCall{argv: strings.Fields(string(argv)), env: map[string]string{}}
		env, _ := os.ReadFile(filepath.Join(d, "env"))
		for _, line := range strings.Split(string(env), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				c.env[k] = v
			}
		}
		calls = append(calls, c)
	}
}

// The target dies: the notify script sees armed, failing-over and
// failed-over, in order, each once, with keepalived's arguments and the
// FSTAID_* environment, all delivered before fstaidd exits.
func TestNotifyTransitions(t *testing.T) {
	needHarness(t)
	tp := newTopology(t, true)
	s := newScenario(t)
	dir := filepath.Join(s.dir, "notified")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeNotify(t, dir)
	cfg := s.writeConfig("interval = 0.2\nmaxattempts = 2\ntarget = \"web-01\"\n",
		primaryCurl+secondaryCurl+"[notify]\ncommand = \""+script+" --page\"\ntimeout = 5\n")
	d := armed(t, cfg)
	time.Sleep(time.Second) // five healthy rounds: no notification for them

	tp.target.stop()
	wantExit(t, d, 20*time.Second, exitFailedOver)
	s.oneCall()

	calls := notifyCalls(dir)
	want := []struct{ transition, old, state string }{
		{"armed", "starting", "armed"},
		{"failing-over", "armed", "failing-over"},
		{"failed-over", "failing-over", "failed-over"},
	}
	if len(calls) != len(want) {
		var got []string
		for _, c := range calls {
			got = append(got, strings.Join(c.argv, " "))
		}
		t.Fatalf("notify ran %d times (%q), want %d", len(calls), got, len(want))
	}
	for i, w := range want {
		c := calls[i]
		if strings.Join(c.argv, " ") != "--page INSTANCE web-01 "+w.transition {
			t.Errorf("run %d: argv %q, want --page INSTANCE web-01 %s", i+1, c.argv, w.transition)
		}
		for k, v := range map[string]string{"FSTAID_TRANSITION": w.transition, "FSTAID_OLD_STATE": w.old,
			"FSTAID_STATE": w.state, "FSTAID_TARGET": "web-01"} {
			if c.env[k] != v {
				t.Errorf("run %d (%s): %s = %q, want %q", i+1, w.transition, k, c.env[k], v)
			}
		}
		if c.env["FSTAID_REASON"] == "" || c.env["FSTAID_TIME"] == "" {
			t.Errorf("run %d (%s): FSTAID_REASON %q, FSTAID_TIME %q: want both", i+1, w.transition, c.env["FSTAID_REASON"], c.env["FSTAID_TIME"])
		}
	}
	if r := calls[1].env["FSTAID_REASON"]; !strings.HasPrefix(r, "auto: primary check:") {
		t.Errorf("failing-over reason %q, want auto and the primary's failure", r)
	}
	if calls[1].env["FSTAID_RECORD_STATE"] != "failing-over" || calls[2].env["FSTAID_RECORD_STATE"] != "done" {
		t.Errorf("FSTAID_RECORD_STATE %q then %q, want failing-over then done", calls[1].env["FSTAID_RECORD_STATE"], calls[2].env["FSTAID_RECORD_STATE"])
	}
	if n := countLines(d.logText(), "msg=notified"); n != 3 {
		t.Errorf("the log shows %d notifications, want 3", n)
	}
}
