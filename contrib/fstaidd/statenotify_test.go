package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

func TestNotifySection(t *testing.T) {
	for _, c := range []struct {
		name, section string
		want          []string // problems; nil: valid
		timeout       time.Duration
	}{
		{"default timeout", "[notify]\ncommand = \"/bin/true --page\"\n", nil, fstaid.DefaultNotifyTimeout},
		{"seconds", "[notify]\ncommand = \"/bin/true\"\ntimeout = 2.5\n", nil, 2500 * time.Millisecond},
		{"duration string", "[notify]\ncommand = \"/bin/true\"\ntimeout = \"1m\"\n", nil, time.Minute},
		{"misspelt key", "[notify]\ncomand = \"/bin/true\"\n", []string{"[notify] command: is required", `[notify] comand: unknown key (did you mean "command"?)`}, 0},
		{"misspelt section", "[notfy]\ncommand = \"/bin/true\"\n", []string{`top level notfy: unknown key (did you mean "notify"?)`}, 0},
		{"not executable", "[notify]\ncommand = \"/nonexistent/page --now\"\n", []string{"[notify] command: /nonexistent/page is not an executable file"}, 0},
		{"shell operator", "[notify]\ncommand = \"page | mail\"\n", []string{"[notify] command: command \"page | mail\" contains a shell operator"}, 0},
		{"timeout zero", "[notify]\ncommand = \"/bin/true\"\ntimeout = 0\n", []string{"[notify] timeout: must be more than 0 seconds"}, 0},
		{"timeout type", "[notify]\ncommand = \"/bin/true\"\ntimeout = true\n", []string{"[notify] timeout: must be a number of seconds"}, 0},
	} {
		// Validated with every other key: a problem elsewhere is
		// reported in the same error.
		cfg, err := ParseConfig(validBase + c.section)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if _, timeout := cfg.Notify.notifier(); timeout != c.timeout {
				t.Errorf("%s: timeout %v, want %v", c.name, timeout, c.timeout)
			}
			continue
		}
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", c.name, err, w)
			}
		}
	}
	_, err := ParseConfig(strings.Replace(validBase, "port = 8080", "port = 0", 1) + "[notify]\ntimeout = 0\n")
	for _, w := range []string{"[global] port", "[notify] command: is required", "[notify] timeout"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("every problem at once: %v, want it to say %q", err, w)
		}
	}
}

// The daemon runs [notify] command on its transitions, and delivers the
// last one (stopped) before it exits.
func TestDaemonRunsNotifyCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "notified")
	script := filepath.Join(dir, "notify.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$3 $FSTAID_OLD_STATE>$FSTAID_STATE $FSTAID_TARGET\" >> "+out+"\n"), 0o755)
	e := newEnv(t, 0, users+"[notify]\ncommand = \""+script+"\"\ntimeout = 5\n")
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	r.stop()
	if code := r.wait(t); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	b, _ := os.ReadFile(out)
	if want := "armed starting>armed db1\nstopped armed>stopped db1\n"; string(b) != want {
		t.Errorf("notify command saw:\n%s\nwant:\n%s", b, want)
	}
}
