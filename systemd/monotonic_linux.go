package systemd

import (
	"syscall"
	"time"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC (linux/time.h).
const clockMonotonic = 1

// monotonic returns CLOCK_MONOTONIC, the clock systemd's MONOTONIC_USEC
// is read from (Go's own monotonic reading is not exposed).
func monotonic() (time.Duration, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
