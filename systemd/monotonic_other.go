//go:build !linux

package systemd

import "time"

// monotonic is only needed with systemd, that is on Linux.
func monotonic() (time.Duration, bool) { return 0, false }
