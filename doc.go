// Package fstaid is a failover monitor: it watches one target from a third
// host and, when the target is dead and the monitor itself is fine, takes a
// durable lock, runs the failover handlers once, and stops. A human re-arms
// it. It is the library behind the fstaidd daemon (contrib/fstaidd) and a
// compatible successor to the original fstaid.
//
// # The round
//
// Before monitoring, Run makes the lock's pre-flight (Preflight): it
// refuses to start while the lock holds a failover record (a *LockedError
// naming it) or cannot be read, written or made durable, warns when it
// would not survive a reboot, and runs the start-up check: self, primary and secondary once each (see
// WithStartupCheck). Then, every interval measured start to start:
//
//  1. The self check (WithSelf). Failing: Run returns ErrSelfCheck (the
//     monitor is the isolated one), or skips the round with
//     WithContinueIfSelfCheckFailed.
//  2. The primary check (WithPrimary), up to WithMaxAttempts times,
//     WithAttemptInterval apart. Any pass ends the round.
//  3. The secondary check (WithSecondary). Passing: no failover; the
//     target looks dead from here only. Not configured: the primary's
//     failure is enough.
//  4. The self check again. Failing: no failover; monitoring goes on.
//  5. Failover: take the lock first (durably), run every handler
//     (WithHandler) in order, each within its own timeout, record their
//     outcome, and return a *FailoverError.
//
// A check that exceeds its timeout fails with exit status -1 and TimedOut
// set. Fail fails over by hand, skipping the checks, armed or not; however
// many goroutines call it while the loop itself fails over, the handlers
// run at most once per lock. A failover that has begun runs to completion
// on a context that the caller's cancellation does not reach.
//
// # Checks and handlers
//
// Check and Handler are one-method interfaces with CheckFunc and
// HandlerFunc adapters. Built in: Command (a command line, split as the
// original split it, in its own process group, killed whole at its
// timeout), HTTP (a fresh connection per check, no redirects, no proxy from
// the environment, an explicit Proxy for checks through a bastion), TCP,
// and Script, which calls a handler script exactly as the original
// did: PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT,
// plus FSTAID_* environment variables (Event.Env).
//
// # The lock
//
// A Lock's Acquire succeeds for exactly one writer. FileLock publishes an
// fsynced record with link(2), or renameat2(RENAME_NOREPLACE) where the
// directory refuses hard links (vfat), so an existing file, even the
// original's empty one, makes it fail; its Probe tries exactly that at
// start-up. It belongs on a file system that survives a reboot. The
// record (Record) tells when, where, why, and each handler's outcome; after a crash mid-handler it stays "failing-over", and the
// monitor stays locked. A human re-arms it through the lock's Remove
// (LockRemover), which removes only the record shown, never a newer
// failover's (ErrRecordChanged). A lock that several monitors share may
// also be a LockWatcher (contrib/etcd is): Run then stops as soon as
// another monitor's record appears.
//
// # Readiness
//
// WithReadiness re-verifies the failover path on its own schedule while
// the Monitor is armed: the lock with the start-up pre-flight, and every
// handler, check or extra ReadinessCheck that can say whether its part of
// a failover would work now (ScriptHandler: the command is still an
// executable file; contrib/aws: DryRun of each call and the resources;
// contrib/etcd: the quorum's live monitors). A run goes on only in the
// gaps between rounds, each gap's context ending when the next round
// starts, so it never delays a round or a failover; a part cut short
// goes on in the next gap, and a failover ends the gap at once. The result, with a
// Problem per reason, is in Status().Readiness and in the Record of a
// later failover; a NoticeReadiness announces each change, and
// WithNotifications turns a change of Ready into a ready or not-ready
// transition. A Monitor that is not ready still fails over.
//
// # Observing
//
// Status returns a snapshot, including the deadline by which the loop must
// next make progress (for a watchdog); WithObserver receives every
// lifecycle Notice. Logs go to a *slog.Logger (WithLogger).
//
// # State notifications
//
// WithNotifications turns notices into Transitions (armed, unarmed,
// self-check-failed, lock-unavailable, failing-over, failed-over, locked,
// stopped), once per change, and queues them on a Notifications, which
// delivers them one at a time, in order, each within its timeout, to a
// Notifier: NotifyScript runs a command as keepalived runs a notify script
// (`INSTANCE <target> <transition>`, plus FSTAID_* variables). The queue
// is bounded and drops its oldest when full: a slow or hung notification
// never delays a round or a failover. Other producers add their own
// transitions with Submit. Close it after Run returned: it delivers what
// is queued (the final stopped or failed-over) within its context.
//
// # Reconfiguring a running Monitor
//
// Reconfigure takes the options New takes and replaces the checks, the
// handlers and the timing of a running Monitor: validated whole first,
// applied by the loop between two rounds (the next round starts one new
// interval after the last one started), never while a failover runs, and
// keeping the armed or unarmed state. The lock, its timeout, the target,
// the logger and the observers cannot change (ErrReconfigure names them);
// nor can anything once a failover has ended.
package fstaid
