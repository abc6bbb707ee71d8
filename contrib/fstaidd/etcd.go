package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// With [etcd], several fstaidd on different hosts watch one target and
// share one failover record: the first to decide takes it, the others
// see it and stop without running a handler. The file lock is used only
// with on_unavailable = "local-lock", as the fallback.

// quorumTimeout bounds the k-of-n verdict check (the secondary check when
// [etcd] quorum is set).
const quorumTimeout = 5 * time.Second

func (d *decoder) etcd(cfg *Config) {
	v, ok := cfg.ext["etcd"]
	if !ok {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf("", "etcd", "must be a table ([etcd]), got %s", typeName(v))
		return
	}
	if q, ok := m["quorum"].(int64); ok && q > 0 && cfg.Secondary != nil {
		d.errorf("etcd", "quorum", "replaces [secondary] (k of n monitors' verdicts are the second opinion): remove one of them")
	}
	ec, err := etcd.ParseConfig(m)
	if err != nil {
		for _, e := range flatten(err) {
			d.errs = multierror.Append(d.errs, e)
		}
		return
	}
	// The verdict TTL must outlast the time between two rounds'
	// publications: refuse a shorter one, derive the default.
	ec.Interval, ec.RoundBound = roundTiming(cfg, ec.Quorum)
	if err := ec.Validate(); err != nil {
		for _, e := range flatten(err) {
			d.errs = multierror.Append(d.errs, e)
		}
		return
	}
	cfg.Etcd = ec
}

// roundTiming returns [global] interval and the worst case of a round as
// fstaid.Monitor.RoundBound computes it (attempts × primary timeout + the
// pauses between attempts + the secondary timeout — the quorum's with
// [etcd] quorum — + twice the self timeout, plus the library's margin of
// 0.5 s per process and 1 s), from the config before defaults are
// applied. TestRoundTimingMatchesMonitor keeps the two in step.
func roundTiming(cfg *Config, quorum int) (interval, bound time.Duration) {
	g := cfg.Global
	interval = g.Interval
	if interval < 0 {
		interval = fstaid.DefaultInterval // decoder.defaults' too
	}
	n := g.MaxAttempts
	if n < 0 {
		n = fstaid.DefaultMaxAttempts
	}
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
	return interval, d + time.Duration(n+3)*outputGrace + time.Second
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
		return store.LockWithFallback(fstaid.NewFileLock(cfg.LockFile()))
	}
	return store.Lock()
}

// etcdOptions are the Monitor options [etcd] adds: its lock and, with a
// quorum, the verdicts as the secondary check.
func etcdOptions(cfg *Config, store *etcd.Store, lock fstaid.Lock) []fstaid.Option {
	opts := []fstaid.Option{fstaid.WithLock(lock)}
	if k := cfg.Etcd.Quorum; k > 0 {
		v := store.Verdicts()
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

// etcdCheck is `fstaidd check`'s part for etcd.
func etcdCheck(ctx context.Context, cfg *Config) []string {
	if cfg.Etcd == nil {
		return nil
	}
	store, err := openEtcd(cfg, discard)
	if err != nil {
		return []string{"PROBLEM: " + err.Error()}
	}
	defer store.Close()
	var lines []string
	if err := store.Lock().Probe(ctx); err != nil {
		lines = append(lines, fmt.Sprintf("PROBLEM: etcd lock %s: %v", store.Lock(), err))
	} else {
		lines = append(lines, fmt.Sprintf("etcd lock %s: reachable and writable", store.Lock()))
	}
	if rec, err := store.Lock().Load(ctx); err == nil && rec != nil {
		lines = append(lines, fmt.Sprintf("PROBLEM: LOCKED: a failover record exists in etcd (%s); fstaidd will refuse to start (exit 12)", describeRecord(rec)))
	}
	if cfg.Etcd.Quorum > 0 {
		if err := store.Verdicts().Probe(ctx); err != nil {
			lines = append(lines, fmt.Sprintf("PROBLEM: etcd verdicts: %v", err))
		} else {
			lines = append(lines, fmt.Sprintf("etcd verdicts: this monitor (%s) may publish; quorum %d", store.MonitorID(), cfg.Etcd.Quorum))
		}
	}
	return lines
}

// etcdStatus is `fstaidd status`'s part for etcd: the record, its holder
// and every monitor's verdict.
func etcdStatus(ctx context.Context, cfg *Config) []string {
	if cfg.Etcd == nil {
		return nil
	}
	store, err := openEtcd(cfg, discard)
	if err != nil {
		return []string{"etcd: " + err.Error()}
	}
	defer store.Close()
	st, err := store.Status(ctx)
	if err != nil {
		return []string{"etcd: " + err.Error()}
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	lines := []string{"etcd (all monitors):", string(data)}
	if st.Interrupted {
		lines = append(lines, "WARNING: a failover was interrupted (its holder died mid-handler): check the target and the standby by hand")
	}
	return lines
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
	if _, err := store.UnlockRevision(ctx, st.Revision); err != nil {
		out("removing the record: " + err.Error())
		return 1
	}
	out("removed " + st.Lock + ": every fstaidd sharing it will arm on its next start")
	return 0
}
