package fstaid_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// These tests run real processes on real time.

func TestScriptHandlerArgsAndEnv(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "handler.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > \"$0.args\"\nenv | grep ^FSTAID_ | sort > \"$0.env\"\n"), 0o755)
	h := fstaid.Script(script + " --flag")
	ev := &fstaid.Event{
		Reason: fstaid.ReasonAuto, Target: "db1", Time: time.Unix(100, 0), RoundStart: time.Unix(99, 0),
		Primary:   fstaid.Result{Name: "primary", ExitStatus: 1, HTTPStatus: 503, Error: "GET x: 503", Start: time.Unix(99, 0), Duration: time.Second, Attempts: 3},
		Secondary: fstaid.Result{Name: "secondary", ExitStatus: -1, TimedOut: true},
	}
	if err := h.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(script + ".args")
	if got := strings.TrimSpace(string(args)); got != "--flag 1 false -1 true" {
		t.Errorf("argv %q, want %q", got, "--flag 1 false -1 true")
	}
	env, _ := os.ReadFile(script + ".env")
	for _, want := range []string{"FSTAID_REASON=auto", "FSTAID_TARGET=db1", "FSTAID_PRIMARY_EXIT=1",
		"FSTAID_PRIMARY_HTTP_STATUS=503", "FSTAID_PRIMARY_ATTEMPTS=3", "FSTAID_PRIMARY_DURATION=1",
		"FSTAID_SECONDARY_EXIT=-1", "FSTAID_SECONDARY_TIMED_OUT=true", "FSTAID_ROUND_DURATION=1",
		"FSTAID_PRIMARY_ERROR=GET x: 503"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	// A failing handler reports its exit status.
	os.WriteFile(script, []byte("#!/bin/sh\nexit 3\n"), 0o755)
	if err := h.Handle(t.Context(), ev); err == nil || err.Error() != script+": exit status 3" {
		t.Errorf("Handle = %v, want %q", err, script+": exit status 3")
	}
}

func TestScriptHandlerTimeoutKillsGroup(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	t.Setenv("PIDS", pids)
	h := fstaid.Script(`sh -c 'trap "" TERM; sleep 30 & echo $! > "$PIDS"; wait'`)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := h.Handle(ctx, &fstaid.Event{}); err == nil || !strings.Contains(err.Error(), "exit status -1") {
		t.Errorf("Handle = %v, want killed", err)
	}
	for _, pid := range readPIDs(t, pids) {
		waitGone(t, pid)
	}
}
