package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// `fstaidd check`, in the spirit of MHA's masterha_check_*: it talks
// to the terminal, never to the journal.

// cmdCheck validates the config and the environment: each check once
// with its result and latency, the handler, the lock directory and state.
// Exit 0 when all is well, 1 when something needs attention, 78 on a bad
// config.
func cmdCheck(ctx context.Context, path string, out io.Writer) int {
	cfg, err := loadToolConfig(path)
	if err != nil {
		fmt.Fprintln(out, "config:", err)
		return exitConfig
	}
	fmt.Fprintf(out, "config %s: OK\n", path)
	for _, s := range cfg.unreadSecrets {
		fmt.Fprintf(out, "  note: %s names a systemd credential, which only the service reads ($CREDENTIALS_DIRECTORY is not set here)\n", s)
	}
	problems := 0
	bad := func(format string, args ...any) {
		problems++
		fmt.Fprintf(out, "  PROBLEM: "+format+"\n", args...)
	}

	if cfg.Handler != nil {
		// The same check as the daemon's readiness runs (the tools'
		// config leaves it out, so that status works without it).
		if ps := cfg.Handler.script.Ready(ctx); len(ps) > 0 {
			bad("handler %s: %s", ps[0].Resource, ps[0].Message)
		} else {
			fmt.Fprintf(out, "handler: %s (timeout %v): executable\n", cfg.Handler.script.Path(), cfg.Handler.Timeout)
		}
	}

	var store *etcd.Store
	if cfg.Etcd != nil {
		if store, err = openEtcd(cfg, discard); err != nil {
			bad("%v", err)
		} else {
			defer store.Close()
		}
	}
	checkLock(ctx, cfg, store, bad, out)

	debug := cfg.Global.Mode == "debug"
	for _, s := range []*CheckSection{cfg.Self, cfg.Primary, cfg.Secondary} {
		if s == nil {
			continue
		}
		if s.Username != "" && s.password == "" {
			fmt.Fprintf(out, "%s check %s: not run here: its password is a systemd credential\n", s.Name, s.describe())
			continue
		}
		c, err := s.check(cfg, debug)
		if err != nil {
			bad("%s check: %v", s.Name, err)
			continue
		}
		res := runOnce(ctx, c, s.Timeout)
		status := "PASS"
		if !res.Passed {
			status = "FAIL"
			problems++
		}
		fmt.Fprintf(out, "%s check %s: %s in %v (exit %d, timed out %v)", s.Name, s.describe(), status,
			res.Duration.Round(time.Microsecond), res.ExitStatus, res.TimedOut)
		if res.Error != "" {
			fmt.Fprintf(out, ": %s", res.Error)
		}
		fmt.Fprintln(out)
	}
	for _, line := range append(awsChecks(ctx, cfg), etcdCheck(ctx, cfg, store)...) {
		if strings.HasPrefix(line, "PROBLEM") {
			problems++
		}
		fmt.Fprintln(out, line)
	}
	if problems > 0 {
		fmt.Fprintf(out, "%d problem(s) found\n", problems)
		return 1
	}
	fmt.Fprintln(out, "all checks passed: fstaidd would arm")
	return 0
}

// checkLock is check's part for the lock: the daemon's lock put through
// the pre-flight its Run makes at start-up (fstaid.Preflight), property
// by property. store is nil without [etcd], or when etcd could not be
// opened (already reported): then only a fallback file lock is checked.
func checkLock(ctx context.Context, cfg *Config, store *etcd.Store, bad func(string, ...any), out io.Writer) {
	var lock fstaid.Lock = cfg.FileLock
	switch {
	case !cfg.UsesFileLock():
		fmt.Fprintln(out, "lock: in etcd (the lock directory is not used)")
	case cfg.Etcd != nil:
		fmt.Fprintf(out, "lock: in etcd, falling back to %s when etcd is unreachable at failover time\n", cfg.FileLock)
	default:
		fmt.Fprintf(out, "lock: %s\n", cfg.FileLock)
	}
	switch {
	case store != nil:
		lock = etcdLock(cfg, store)
	case !cfg.UsesFileLock():
		return // etcd could not be opened: nothing to check
	}
	rec, err := fstaid.Preflight(ctx, lock)
	var problems map[fstaid.LockProperty]error
	if pe := (*fstaid.PreflightError)(nil); errors.As(err, &pe) {
		problems = pe.Problems
	}
	switch {
	case problems[fstaid.LockWritable] != nil:
		bad("lock not writable: %v", problems[fstaid.LockWritable])
	case problems[fstaid.LockDurable] != nil:
		bad("lock not durable (a record written there may not survive a crash): %v", problems[fstaid.LockDurable])
	default:
		if store != nil {
			fmt.Fprintf(out, "  etcd lock %s: reachable and writable\n", store.Lock())
		}
		if cfg.UsesFileLock() {
			fmt.Fprintln(out, "  directory writable (fsync ok)")
		}
	}
	if err := problems[fstaid.LockPersistent]; err != nil {
		bad("%v", err)
	} else if cfg.UsesFileLock() {
		fmt.Fprintln(out, "  directory persistent across reboots")
	}
	switch {
	case problems[fstaid.LockReadable] != nil:
		bad("lock unreadable: %v", problems[fstaid.LockReadable])
	case rec != nil:
		bad("LOCKED: a failover record exists (%s); fstaidd will refuse to start (exit 12)", describeRecord(rec))
	default:
		fmt.Fprintln(out, "  free: no failover record")
	}
}

func (s *CheckSection) describe() string {
	switch {
	case s.HTTP != "":
		// Passwords, in the URLs or password_file, are never shown.
		d := "GET " + shownURL(s.HTTP)
		if s.Proxy != "" {
			d += " via " + shownURL(s.Proxy)
		}
		if s.Username != "" {
			d += " as " + s.Username + " (password from " + s.PasswordFile + ")"
		}
		return d + s.httpOptions.describe()
	case s.TCP != "":
		return "tcp " + s.TCP
	case s.IMDS:
		return "IMDSv2 instance-id"
	}
	return strconv.Quote(s.Command)
}

// runOnce runs a check once as the Monitor would: within its timeout,
// timed out decided by the deadline.
func runOnce(ctx context.Context, c fstaid.Check, timeout time.Duration) fstaid.Result {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := c.Check(cctx)
	res := fstaid.Result{Start: start, Duration: time.Since(start), Passed: err == nil}
	switch {
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		res.Passed, res.TimedOut, res.ExitStatus, res.Error = false, true, -1, "timed out after "+timeout.String()
	case err != nil:
		res.ExitStatus = 1
		var ce *fstaid.CheckError
		if errors.As(err, &ce) {
			res.ExitStatus = ce.ExitStatus
		}
		res.Error = err.Error()
	}
	return res
}
