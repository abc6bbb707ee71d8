package systemd

import (
	"testing"
	"time"
	_ "unsafe" // go:linkname
)

// runtimeNanotime is the Go runtime's own CLOCK_MONOTONIC (read through
// the vDSO): an independent source to check monotonic against.
//
//go:linkname runtimeNanotime runtime.nanotime
func runtimeNanotime() int64

func TestMonotonicIsClockMonotonic(t *testing.T) {
	before := time.Duration(runtimeNanotime())
	got, ok := monotonic()
	after := time.Duration(runtimeNanotime())
	if !ok || got < before || got > after {
		t.Errorf("monotonic() = %v, %v; want between the runtime's CLOCK_MONOTONIC readings %v and %v", got, ok, before, after)
	}
}
