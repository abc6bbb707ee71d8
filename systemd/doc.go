// Package systemd is the thin layer between fstaid and systemd: readiness,
// status and watchdog notifications, socket activation, and native
// journald logging. It wraps github.com/coreos/go-systemd/v22 and adds
// what a failover monitor needs on top of it.
//
// Everything here degrades to a no-op outside systemd: with NOTIFY_SOCKET
// unset the Notifier sends nothing, WatchdogInterval reports no watchdog,
// and Listeners returns an empty map, so the daemon runs the same way from
// a terminal.
//
// # Notifications
//
// A Notifier sends READY=1, STATUS=, STOPPING=1, WATCHDOG=1 and, around
// a configuration reload, RELOADING=1 with MONOTONIC_USEC (then READY=1
// again) datagrams (the unit needs Type=notify). Its methods may be
// called by several goroutines at once.
//
// # Watchdog
//
// RunWatchdog pings at the period WatchdogInterval derives from the unit's
// WatchdogSec, but only while a health function says the monitor's loop is
// on time: Monitor.Status().Deadline is zero (Run is not running, so
// nothing is stuck) or still ahead (see RunWatchdog and the package
// example). A loop stuck past its deadline
// stops the pings and systemd kills and restarts the process; a slow but
// healthy round, or a long failover, does not, because the Monitor moves
// its deadline to cover them.
//
// # Socket activation
//
// Listeners returns the sockets systemd passed, keyed by FileDescriptorName
// (fstaidd-fail.socket names its socket "fail").
//
// # Journal
//
// JournalStream tells whether stderr is the journal; if so,
// NewJournalHandler (JournalOptions set the level and the
// SYSLOG_IDENTIFIER) logs to journald natively, with each slog attribute
// as a FSTAID_* field that `journalctl FSTAID_EVENT=failover` can match.
package systemd
