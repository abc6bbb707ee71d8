package main

import (
	"strings"
	"testing"
)

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
