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
)

// `fstaidd check`, in the spirit of MHA's masterha_check_*: it talks
// to the terminal, never to the journal.

// cmdCheck validates the config and the environment: each check once
// with its result and latency, the handler, the lock directory and state.
// Exit 0 when all is well, 1 when something needs attention, 78 on a bad
// config.
func cmdCheck(ctx context.Context, path string, out io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(out, "config:", err)
		return exitConfig
	}
	fmt.Fprintf(out, "config %s: OK\n", path)
	problems := 0
	bad := func(format string, args ...any) {
		problems++
		fmt.Fprintf(out, "  PROBLEM: "+format+"\n", args...)
	}

	if cfg.Handler != nil {
		fmt.Fprintf(out, "handler: %s (timeout %v): executable\n", cfg.Handler.script.Path(), cfg.Handler.Timeout)
	}

	lock := cfg.FileLock
	switch {
	case !cfg.UsesFileLock():
		fmt.Fprintln(out, "lock: in etcd (the lock directory is not used)")
	case cfg.Etcd != nil:
		fmt.Fprintf(out, "lock: in etcd, falling back to %s when etcd is unreachable at failover time\n", lock.Path())
	default:
		fmt.Fprintf(out, "lock: %s\n", lock.Path())
	}
	// etcdCheck below probes the shared lock.
	if cfg.UsesFileLock() {
		if err := lock.Probe(ctx); err != nil {
			bad("lock directory not writable: %v", err)
		} else {
			fmt.Fprintln(out, "  directory writable (fsync ok)")
		}
		if err := lock.Persistent(); err != nil {
			bad("%v", err)
		} else {
			fmt.Fprintln(out, "  directory persistent across reboots")
		}
		if rec, err := lock.Load(ctx); err != nil {
			bad("lock unreadable: %v", err)
		} else if rec != nil {
			bad("LOCKED: a failover record exists (%s); fstaidd will refuse to start (exit 12)", describeRecord(rec))
		} else {
			fmt.Fprintln(out, "  free: no failover record")
		}
	}

	debug := cfg.Global.Mode == "debug"
	for _, s := range []*CheckSection{cfg.Self, cfg.Primary, cfg.Secondary} {
		if s == nil {
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
	for _, line := range append(awsChecks(ctx, cfg), etcdCheck(ctx, cfg)...) {
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
		return d
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
