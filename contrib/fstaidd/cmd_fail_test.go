package main

import (
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
