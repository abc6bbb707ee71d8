package systemd

import "os"

// Enabled reports whether notifications go anywhere (NOTIFY_SOCKET is
// set). Only tests ask: callers send regardless, and a Notifier without
// a socket sends nothing.
func (n *Notifier) Enabled() bool {
	return n != nil && os.Getenv("NOTIFY_SOCKET") != ""
}
