package main

import (
	"testing"
	"time"
)

// waitFor polls cond until it returns nil and fails the test with cond's
// last error if that takes longer than d. Every test that waits for
// another goroutine or process waits through it, so that none can hang
// on a condition that never comes; a wait on a channel uses a select
// with a deadline instead.
func waitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
