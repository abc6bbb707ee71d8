package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// With [etcd], several fstaidd on different hosts watch one target and
// share one failover record: the first to decide takes it, the others
// see it and stop without running a handler. The file lock is used only
// with on_unavailable = "local-lock", as the fallback.

// quorumTimeout bounds the k-of-n vote check (the secondary check when
// [etcd] quorum is set).
const quorumTimeout = 5 * time.Second

// decodeEtcd reads [etcd] (contrib/etcd decodes its keys) and gives it
// what it needs from the rest of the file before it validates: the
// rounds' timing, for its vote TTL, and the votes' scope.
func (c *Config) decodeEtcd(t *config.Table) {
	ec := etcd.DecodeSection(t)
	if ec.Quorum > 0 && c.Secondary != nil {
		t.Errorf("quorum", "replaces [secondary] (k of n monitors' verdicts are the second opinion): remove one of them")
	}
	// The vote TTL must outlast the time between two rounds'
	// publications: refuse a shorter one, derive the default.
	ec.Interval, ec.RoundBound = roundTiming(c, ec.Quorum)
	ec.Target, ec.Digest = voteScope(c, ec.Quorum)
	t.Problems().Include("", ec.Validate())
	c.Etcd = ec
}

// voteScope is what every monitor of one target must agree on for
// their votes to count together: the target's name, and a digest of
// the primary check (what is checked: command, URL without its
// credentials, address) and k. Timeouts, intervals and the other checks
// may differ between monitors.
func voteScope(cfg *Config, quorum int) (target, digest string) {
	target = cfg.Global.Target
	var primary string
	if p := cfg.Primary; p != nil {
		u := p.HTTP
		if pu, err := url.Parse(u); err == nil {
			u = pu.Redacted()
		}
		primary = fmt.Sprintf("command=%q http=%q tcp=%q imds=%v", p.Command, u, p.TCP, p.IMDS)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "target=%q\nprimary=%s\nquorum=%d\n", target, primary, quorum))
	return target, hex.EncodeToString(sum[:8])
}

// etcdStartup is the daemon's start-up check of the votes, with a
// quorum: another live process publishing under this monitor_id is a
// configuration error (both would count as one monitor: k may never be
// reached); fewer live monitors than k is logged loudly. etcd being
// unreachable here only skips the check: Run's start-up decides.
func etcdStartup(ctx context.Context, cfg *Config, store *etcd.Store, logger *slog.Logger) error {
	k := cfg.Etcd.Quorum
	if k <= 0 {
		return nil
	}
	v := store.Votes()
	err := v.CheckUnique(ctx)
	if errors.Is(err, etcd.ErrDuplicateMonitor) {
		return fmt.Errorf("%w: [etcd] monitor_id: %w", errConfig, err)
	}
	if err != nil {
		logger.Warn("etcd: cannot check that this monitor_id is unique", "monitor_id", store.MonitorID(), "error", err)
		return nil
	}
	live, mismatched, err := v.Live(ctx)
	if err != nil {
		return nil
	}
	if !slices.Contains(live, store.MonitorID()) {
		live = append(live, store.MonitorID())
	}
	if len(live) < k {
		logger.Warn("etcd: fewer live monitors than the quorum: a dead target cannot be confirmed until more monitors run",
			"event", "quorum-unreachable", "live", live, "quorum", k)
	}
	if len(mismatched) > 0 {
		logger.Warn("etcd: monitors under this prefix publish verdicts about another target or configuration; they do not count",
			"monitors", mismatched, "target", cfg.Etcd.Target, "config", cfg.Etcd.Digest)
	}
	return nil
}

// roundTiming returns [global] interval and the worst case of a round as
// fstaid.Monitor.RoundBound computes it (attempts × primary timeout + the
// pauses between attempts + the secondary timeout — the quorum's with
// [etcd] quorum — + twice the self timeout, plus the library's margin of
// 0.5 s per process and 1 s), from [global] with its defaults and the
// checks decoded before [etcd]. TestRoundTimingMatchesMonitor keeps the
// two in step.
func roundTiming(cfg *Config, quorum int) (interval, bound time.Duration) {
	g := cfg.Global
	n := g.MaxAttempts
	var primary, secondary, self time.Duration
	if cfg.Primary != nil {
		primary = cfg.Primary.Timeout
	}
	if cfg.Secondary != nil {
		secondary = cfg.Secondary.Timeout
	}
	if quorum > 0 {
		secondary = quorumTimeout
	}
	if cfg.Self != nil {
		self = cfg.Self.Timeout
	}
	const outputGrace = 500 * time.Millisecond // fstaid's, per process
	d := time.Duration(n)*primary + time.Duration(max(n-1, 0))*g.AttemptInterval + secondary + 2*self
	return g.Interval, d + time.Duration(n+3)*outputGrace + time.Second
}

// openEtcd connects to etcd; the caller closes the store. An etcd that
// cannot be reached (the client authenticates at once when [etcd]
// username is set) is an outage, not a configuration error: the error
// then wraps etcd.ErrUnreachable and not errConfig, and the daemon exits
// 70 to be restarted. A refused credential or unusable TLS files are
// errConfig (78).
func openEtcd(cfg *Config, logger *slog.Logger) (*etcd.Store, error) {
	store, err := etcd.Open(cfg.Etcd, logger)
	if errors.Is(err, etcd.ErrUnreachable) {
		return nil, fmt.Errorf("[etcd]: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: [etcd]: %w", errConfig, err)
	}
	return store, nil
}

// etcdLock is the lock [etcd] gives: the shared record, backed by the
// file lock when on_unavailable = "local-lock".
func etcdLock(cfg *Config, store *etcd.Store) fstaid.Lock {
	if cfg.Etcd.OnUnavailable == etcd.OnUnavailableLocalLock {
		return store.LockWithFallback(cfg.FileLock)
	}
	return store.Lock()
}

// etcdOptions are the Monitor options [etcd] adds: its lock and, with a
// quorum, the votes as the secondary check.
func etcdOptions(cfg *Config, store *etcd.Store, lock fstaid.Lock) []fstaid.Option {
	opts := []fstaid.Option{fstaid.WithLock(lock)}
	if k := cfg.Etcd.Quorum; k > 0 {
		v := store.Votes()
		opts = append(opts, fstaid.WithSecondary(v.Quorum(k), quorumTimeout), fstaid.WithObserver(v.Observer()))
	}
	return opts
}

// etcdUnavailable reports an etcd outage (restartable), as opposed to a
// lock directory that cannot be written (a configuration error).
func etcdUnavailable(err error) bool {
	var ue *etcd.UnavailableError
	return errors.As(err, &ue)
}

// etcdCheck is `fstaidd check`'s part for etcd's votes (checkLock
// checks the lock); store is nil without [etcd] or when it could not be
// opened.
func etcdCheck(ctx context.Context, cfg *Config, store *etcd.Store) []string {
	if store == nil {
		return nil
	}
	var lines []string
	if k := cfg.Etcd.Quorum; k > 0 {
		if err := store.Votes().Probe(ctx); err != nil {
			lines = append(lines, fmt.Sprintf("PROBLEM: etcd verdicts: %v", err))
		} else {
			lines = append(lines, fmt.Sprintf("etcd verdicts: this monitor (%s) may publish; quorum %d", store.MonitorID(), k))
		}
		if live, mismatched, err := store.Votes().Live(ctx); err == nil {
			lines = append(lines, fmt.Sprintf("etcd verdicts: %d live monitor(s) publish about target %q (config %s): %s",
				len(live), cfg.Etcd.Target, cfg.Etcd.Digest, strings.Join(live, ", ")))
			// This monitor counts once it runs, whether or not it does now.
			if !slices.Contains(live, store.MonitorID()) {
				live = append(live, store.MonitorID())
			}
			if len(live) < k {
				lines = append(lines, fmt.Sprintf("WARNING: only %d monitor(s) (%s, this one included) for quorum %d: a dead target cannot be confirmed until more run",
					len(live), strings.Join(live, ", "), k))
			}
			if len(mismatched) > 0 {
				lines = append(lines, fmt.Sprintf("WARNING: the verdicts of %s are about another target or configuration and do not count: compare [global] target, [primary] and quorum",
					strings.Join(mismatched, ", ")))
			}
		}
	}
	return lines
}

// readEtcdStatus is `fstaidd status`'s view of etcd when the daemon does
// not answer: the record, its holder and every monitor's vote.
func readEtcdStatus(ctx context.Context, cfg *Config) (*etcd.Status, error) {
	store, err := openEtcd(cfg, discard)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if k := cfg.Etcd.Quorum; k > 0 {
		store.Votes().Quorum(k) // Status counts the live monitors against k
	}
	return store.Status(ctx)
}

// etcdUnlock removes the etcd record, only if it is still the one shown.
func etcdUnlock(ctx context.Context, cfg *Config, yes bool, out func(string)) int {
	store, err := openEtcd(cfg, discard)
	if err != nil {
		out(err.Error())
		return 1
	}
	defer store.Close()
	st, err := store.Status(ctx)
	if err != nil {
		out(err.Error())
		return 1
	}
	if st.Record == nil {
		out("no failover record at " + st.Lock + ": nothing to unlock")
		return 0
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	out(fmt.Sprintf("failover record at %s (%s):\n%s", st.Lock, describeRecord(st.Record), data))
	if st.Holder != nil {
		out(fmt.Sprintf("WARNING: monitor %s still holds it (alive): its failover may still be running", st.Holder.Monitor))
	}
	out(rolesWarning)
	if !yes {
		out("Not removed. Run `fstaidd unlock -yes` once the configuration matches the new roles.")
		return 1
	}
	if err := store.Lock().Remove(ctx, st.Record); err != nil {
		out("removing the record: " + err.Error() + unlockAgain(err))
		return 1
	}
	out("removed " + st.Lock + ": every fstaidd sharing it will arm on its next start")
	return 0
}
