package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fstaid/fstaid"
)

// The tools in the spirit of MHA's masterha_check_* talk to the terminal,
// never to the journal.

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
		args, _ := fstaid.SplitCommand(cfg.Handler.Command)
		fmt.Fprintf(out, "handler: %s (timeout %v): executable\n", args[0], cfg.Handler.Timeout)
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

func describeRecord(rec *fstaid.Record) string {
	if rec.Legacy {
		return "a bare lock file as the original fstaid writes, modified " + rec.Time.Format(time.RFC3339)
	}
	return fmt.Sprintf("written %s by %s pid %d, reason %s, state %s", rec.Time.Format(time.RFC3339), rec.Host, rec.PID, rec.Reason(), rec.State)
}

// daemonURL is the running daemon's base URL from the flag or the config.
func daemonURL(cfg *Config, addr string) string {
	if addr == "" {
		addr = cfg.ListenAddress()
		host, port, _ := net.SplitHostPort(addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if strings.Contains(addr, "://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// credentials fall back to the config's first user (the first admin
// when admin is set: only admins may fail over), and to its password
// when that is plain.
func credentials(cfg *Config, user, password string, admin bool) (string, string) {
	if user != "" {
		return user, password
	}
	for _, u := range cfg.Users {
		if admin && u.Role != RoleAdmin {
			continue
		}
		if password == "" && !isBcrypt(u.Password) {
			password = u.Password
		}
		return u.UserID, password
	}
	return user, password
}

var toolClient = &http.Client{Timeout: 15 * time.Minute}

func request(ctx context.Context, method, rawURL, user, password string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := toolClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// cmdFail asks the running daemon to fail over: 0 when it did and every
// handler succeeded, 1 otherwise.
func cmdFail(ctx context.Context, path, addr, user, password string, exit int, out, errOut io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password = credentials(cfg, user, password, true)
	u := daemonURL(cfg, addr) + "/fail?exit=" + url.QueryEscape(strconv.Itoa(exit))
	resp, body, err := request(ctx, http.MethodPost, u, user, password)
	if err != nil {
		fmt.Fprintf(errOut, "fstaidd fail: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "%s\n%s", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// cmdStatus shows the daemon's /status, or the lock when it is down.
func cmdStatus(ctx context.Context, path, addr, user, password string, out, errOut io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password = credentials(cfg, user, password, false)
	resp, body, err := request(ctx, http.MethodGet, daemonURL(cfg, addr)+"/status", user, password)
	if err == nil && resp.StatusCode == http.StatusOK {
		out.Write(body)
	} else {
		if err != nil {
			fmt.Fprintf(out, "daemon: not reachable (%v)\n", err)
		} else {
			fmt.Fprintf(out, "daemon: %s\n", resp.Status)
		}
		fileLockStatus(ctx, cfg, out)
	}
	for _, line := range etcdStatus(ctx, cfg) {
		fmt.Fprintln(out, line)
	}
	if err != nil {
		return 1
	}
	return 0
}

// fileLockStatus shows the file lock's state for a daemon that is down.
// With [etcd] alone the file is never written, so "free" would be a lie:
// the etcd view that follows is the record.
func fileLockStatus(ctx context.Context, cfg *Config, out io.Writer) {
	if !cfg.UsesFileLock() {
		fmt.Fprintln(out, "lock: in etcd (the lock directory is not used): see the etcd record below")
		return
	}
	name := "lock"
	if cfg.Etcd != nil {
		name = "fallback lock (on_unavailable = \"local-lock\")"
	}
	rec, err := cfg.FileLock.Load(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(out, "%s %s: %v\n", name, cfg.LockFile(), err)
	case rec == nil:
		fmt.Fprintf(out, "%s %s: free\n", name, cfg.LockFile())
	default:
		fmt.Fprintf(out, "%s %s: LOCKED, %s\n", name, cfg.LockFile(), describeRecord(rec))
	}
}

const rolesWarning = `WARNING: after a failover the roles are swapped. The standby is now the
active server. Re-arming with the old configuration would watch the wrong
server (or the dead one). Update [primary], [secondary] and the handler
for the new roles BEFORE starting fstaidd again.`

// cmdUnlock shows the failover record and removes it only with -yes.
func cmdUnlock(ctx context.Context, path string, yes bool, _ io.Reader, out, errOut io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	code := 0
	if cfg.Etcd != nil {
		code = etcdUnlock(ctx, cfg, yes, func(s string) { fmt.Fprintln(out, s) })
	}
	// With on_unavailable = "local-lock" a failover may have fallen back
	// to the file: it is cleared too, also while etcd is unreachable.
	if cfg.UsesFileLock() {
		if c := fileUnlock(ctx, cfg.FileLock, yes, out, errOut); c != 0 {
			code = c
		}
	}
	return code
}

// fileUnlock shows the file lock's record and removes it only with yes.
func fileUnlock(ctx context.Context, lock *fstaid.FileLock, yes bool, out, errOut io.Writer) int {
	rec, err := lock.Load(ctx)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 1
	}
	if rec == nil {
		fmt.Fprintf(out, "no failover record at %s: nothing to unlock\n", lock.Path())
		return 0
	}
	fmt.Fprintf(out, "failover record at %s (%s):\n", lock.Path(), describeRecord(rec))
	if !rec.Legacy {
		data, _ := json.MarshalIndent(rec, "", "  ")
		fmt.Fprintf(out, "%s\n", data)
	}
	fmt.Fprintln(out, rolesWarning)
	if !yes {
		fmt.Fprintln(out, "Not removed. Run `fstaidd unlock -yes` once the configuration matches the new roles.")
		return 1
	}
	if err := os.Remove(lock.Path()); err != nil {
		fmt.Fprintln(errOut, "removing the record:", err)
		return 1
	}
	if d, err := os.Open(filepath.Dir(lock.Path())); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(out, "removed %s: fstaidd will arm on its next start\n", lock.Path())
	return 0
}
