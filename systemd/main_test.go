package systemd

import (
	"fmt"
	"os"
	"testing"
)

// childEnv switches the test binary into a helper process (os/exec's own
// tests do the same), for tests that need a fresh process: socket
// activation hands descriptors to a new pid.
const childEnv = "FSTAID_SYSTEMD_TEST_CHILD"

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
