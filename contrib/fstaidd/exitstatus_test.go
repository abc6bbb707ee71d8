package main

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/fstaid/fstaid"
)

// A lock directory that is full or failing at start-up may heal by
// itself: exit 70, which systemd restarts; a read-only or forbidden one
// needs an operator: 78. Found by the fault
// campaign: with 78 a monitor started while its lock directory was full
// never came back once space was freed.
func TestLockUnavailableExitStatus(t *testing.T) {
	lockErr := func(errno syscall.Errno) error {
		return fmt.Errorf("%w: /var/lib/fstaidd/fstaid.8080.lock is not writable: %w", fstaid.ErrLockUnavailable,
			&fs.PathError{Op: "write", Path: "/var/lib/fstaidd/.fstaid.8080.lock.tmp1", Err: errno})
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{lockErr(syscall.ENOSPC), exitSoftware},
		{lockErr(syscall.EDQUOT), exitSoftware},
		{lockErr(syscall.EROFS), exitConfig},
		{lockErr(syscall.EIO), exitSoftware},
		{lockErr(syscall.EACCES), exitConfig},
		{fmt.Errorf("%w: %w", fstaid.ErrLockUnavailable, fstaid.ErrNoExclusivePublish), exitConfig},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
