package systemd

import (
	"strconv"
	"time"
)

// Reloading sends RELOADING=1: the configuration is being reloaded
// (systemctl reload, SIGHUP). systemd shows the unit as "reloading" until
// Ready is sent again, which the caller must do whether the reload worked
// or not. It adds MONOTONIC_USEC, the CLOCK_MONOTONIC time in
// microseconds, which Type=notify-reload (systemd 253 and later) uses to
// match the reload with the signal it sent; older versions ignore it.
func (n *Notifier) Reloading() error {
	if n == nil {
		return nil
	}
	msg := "RELOADING=1"
	if now, ok := monotonic(); ok {
		msg += "\nMONOTONIC_USEC=" + strconv.FormatInt(int64(now/time.Microsecond), 10)
	}
	return n.send(msg)
}
