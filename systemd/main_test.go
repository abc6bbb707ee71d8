package systemd

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// childEnv switches the test binary into a helper process (os/exec's own
// tests do the same), for tests that need a fresh process: socket
// activation hands descriptors to a new pid.
const childEnv = "FSTAID_SYSTEMD_TEST_CHILD"

// childEnviron is the environment for a child test binary: the race
// detector's 1s pause at exit (atexit_sleep_ms) is dropped, keeping any
// other GORACE option.
func childEnviron(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}

func TestMain(m *testing.M) {
	switch mode := os.Getenv(childEnv); mode {
	case "":
		os.Exit(m.Run())
	case "activation":
		os.Exit(activationChild())
	case "activation-bad":
		os.Exit(activationBadChild())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, mode)
		os.Exit(2)
	}
}
