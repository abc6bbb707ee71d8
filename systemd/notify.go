package systemd

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
)

// A Notifier sends sd_notify(3) messages to the service manager. Every
// method is a no-op returning nil when NOTIFY_SOCKET is unset (not run by
// systemd, or not Type=notify), and a nil *Notifier behaves the same, so
// callers need no branches. Methods are safe for concurrent use: each
// message is one datagram on its own connection.
type Notifier struct {
	// pid is sent as MAINPID with READY=1.
	pid int
}

// NewNotifier returns a Notifier for this process.
//
// NOTIFY_SOCKET is read at each send and left in the environment: commands
// the monitor runs inherit it, but NotifyAccess=main in fstaidd.service
// makes systemd ignore anything they send.
func NewNotifier() *Notifier {
	return &Notifier{pid: os.Getpid()}
}

// Ready sends READY=1 with MAINPID, telling systemd that start-up is done.
// MAINPID is included so that systemd tracks this process even when it
// was started through a wrapper that exec'd it.
func (n *Notifier) Ready() error {
	if n == nil {
		return nil
	}
	return n.send(daemon.SdNotifyReady + "\nMAINPID=" + strconv.Itoa(n.pid))
}

// Status sends STATUS=s, the line `systemctl status` shows. Newlines are
// flattened to spaces: sd_notify messages are newline-separated
// assignments, so a newline in s would end the status and could smuggle
// in another assignment (READY=1, say).
func (n *Notifier) Status(s string) error {
	if n == nil {
		return nil
	}
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	return n.send("STATUS=" + s)
}

// Stopping sends STOPPING=1: shutdown has begun.
func (n *Notifier) Stopping() error {
	if n == nil {
		return nil
	}
	return n.send(daemon.SdNotifyStopping)
}

// Watchdog sends WATCHDOG=1, resetting the unit's watchdog timer. Call it
// through RunWatchdog, which ties it to the monitor's health.
func (n *Notifier) Watchdog() error {
	if n == nil {
		return nil
	}
	return n.send(daemon.SdNotifyWatchdog)
}

func (n *Notifier) send(state string) error {
	// false: keep NOTIFY_SOCKET, later messages (STATUS=, WATCHDOG=1)
	// need it.
	if _, err := daemon.SdNotify(false, state); err != nil {
		name, _, _ := strings.Cut(state, "=")
		return fmt.Errorf("systemd: notify %s: %w", name, err)
	}
	return nil
}
