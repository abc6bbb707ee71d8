package fstaid_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// TestMain lets tests re-execute the test binary as a child process that
// runs one scenario (FSTAID_TEST_CHILD names it).
func TestMain(m *testing.M) {
	switch os.Getenv("FSTAID_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "fail-slowly":
		childFailSlowly()
	}
}

// childFailSlowly fails over manually with a handler that marks its
// start and then hangs, to be SIGKILLed by the parent.
func childFailSlowly() {
	lockPath, marker := os.Getenv("FSTAID_TEST_LOCK"), os.Getenv("FSTAID_TEST_MARKER")
	h := fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
		os.WriteFile(marker, []byte("started"), 0o644)
		time.Sleep(time.Hour)
		return nil
	})
	m, err := fstaid.New(fstaid.WithPrimary(fstaid.TCP("127.0.0.1:1"), time.Second), fstaid.WithLogger(nil),
		fstaid.WithHandler("slow", h, 2*time.Hour), fstaid.WithLock(fstaid.NewFileLock(lockPath)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	m.Fail(context.Background())
	os.Exit(4)
}
