package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fstaid/fstaid"
	awsx "github.com/fstaid/fstaid/contrib/aws"
	"github.com/fstaid/fstaid/contrib/etcd"
	"github.com/fstaid/fstaid/systemd"
)

// Live reload: SIGHUP (systemctl reload) reopens the log file and
// re-reads the configuration. The new file is validated whole first;
// keys that cannot change in a running daemon refuse the reload, naming
// each; then the Monitor takes the new checks, handlers and timing
// between two rounds (fstaid.Monitor.Reconfigure: never during a
// failover, the armed state kept) and the notify command changes. A
// reload that fails changes nothing: it is logged, and STATUS= and
// /status say so until a reload succeeds.

// errReload marks why a reload changed nothing.
var errReload = errors.New("fstaidd: reload failed")

// reloader owns SIGHUP and the running configuration.
type reloader struct {
	path    string
	logger  *slog.Logger
	logFile *reopenFile

	mu  sync.Mutex // guards the fields below
	cfg *Config    // the running configuration
	// The running daemon's parts, once attach was called.
	monitor  *fstaid.Monitor
	notes    *fstaid.Notifications
	store    *etcd.Store
	notifier *systemd.Notifier
	status   *statusLine
	awsOpts  []awsx.Option // for the AWS handlers a reload builds
	last     reloadStatus
}

// reloadStatus is the last reload, for /status.
type reloadStatus struct {
	Time time.Time `json:"time"`
	OK   bool      `json:"ok"`
	// Error is why it changed nothing ("" after a good one).
	Error string `json:"error,omitempty"`
}

func newReloader(path string, cfg *Config, logger *slog.Logger, logFile *reopenFile) *reloader {
	return &reloader{path: path, cfg: cfg, logger: logger, logFile: logFile}
}

// attach hands the reloader the running daemon's parts: reloads before
// it only reopen the log file. awsOpts are given to the AWS handlers a
// reload builds, as Config.Options takes them.
func (r *reloader) attach(m *fstaid.Monitor, notes *fstaid.Notifications, store *etcd.Store, n *systemd.Notifier, st *statusLine, awsOpts ...awsx.Option) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.monitor, r.notes, r.store, r.notifier, r.status, r.awsOpts = m, notes, store, n, st, awsOpts
}

// config returns the running configuration.
func (r *reloader) config() *Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// lastReload returns the last reload, nil before the first.
func (r *reloader) lastReload() *reloadStatus {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.Time.IsZero() {
		return nil
	}
	last := r.last
	return &last
}

// serve handles each SIGHUP until hup is closed; signals that arrive
// during a reload are coalesced into one more (hup holds one).
func (r *reloader) serve(ctx context.Context, hup <-chan os.Signal) {
	for range hup {
		if r.logFile != nil {
			if err := r.logFile.Reopen(); err != nil {
				r.logger.Error("reopening the log file", "path", r.config().Global.Log, "error", err)
			}
		}
		r.mu.Lock()
		attached := r.monitor != nil
		r.mu.Unlock()
		if !attached {
			r.logger.Warn("SIGHUP before the monitor runs: the log file is reopened, the configuration is not reloaded", "event", "reload-failed")
			continue
		}
		r.reload(ctx)
	}
}

// reload re-reads the configuration and applies it, telling systemd
// RELOADING=1 before and READY=1 after, whatever the outcome.
func (r *reloader) reload(ctx context.Context) {
	r.mu.Lock()
	n, st := r.notifier, r.status
	r.mu.Unlock()
	n.Reloading()
	start := time.Now()
	r.logger.Info("reloading the configuration", "event", "reload-started", "config", r.path)
	err := r.apply(ctx)
	r.mu.Lock()
	r.last = reloadStatus{Time: start, OK: err == nil}
	if err != nil {
		r.last.Error = err.Error()
	}
	r.mu.Unlock()
	if err != nil {
		r.logger.Error("reload failed: the running configuration is unchanged", "event", "reload-failed", "config", r.path, "error", err)
		st.setReload("reload failed: " + err.Error())
	} else {
		r.logger.Warn("configuration reloaded", "event", "reloaded", "config", r.path, "duration", time.Since(start))
		st.setReload("")
	}
	n.Ready()
}

// apply loads, compares and applies the file; nothing changes on an
// error.
func (r *reloader) apply(ctx context.Context) error {
	next, err := LoadConfig(r.path)
	if err != nil {
		return fmt.Errorf("%w: %w", errReload, err)
	}
	r.mu.Lock()
	cur, m, notes, store, awsOpts := r.cfg, r.monitor, r.notes, r.store, r.awsOpts
	r.mu.Unlock()
	if keys := fixedKeys(cur, next); len(keys) > 0 {
		return fmt.Errorf("%w: these keys cannot change without a restart (systemctl restart): %s", errReload, strings.Join(keys, ", "))
	}
	opts, err := next.Options(ctx, r.logger, awsOpts...)
	if err != nil {
		return fmt.Errorf("%w: %w", errReload, err)
	}
	if next.Etcd != nil && next.Etcd.Quorum > 0 {
		opts = append(opts, fstaid.WithSecondary(store.Votes().Quorum(next.Etcd.Quorum), quorumTimeout))
	}
	if err := m.Reconfigure(ctx, opts...); err != nil {
		return fmt.Errorf("%w: %w", errReload, err)
	}
	// [notify] was validated with the file (the command splits and is
	// executable, the timeout is positive): this cannot fail.
	nn, timeout := next.Notify.notifier()
	if err := notes.SetNotifier(nn, timeout); err != nil {
		r.logger.Error("reload: the notify command did not change", "error", err)
	}
	r.mu.Lock()
	r.cfg = next
	r.mu.Unlock()
	return nil
}

// fixedKeys names every key that differs between cur and next and that
// a running daemon cannot take: what it listens on, where its lock is,
// how it logs, who may call it, what it watches, and the whole of [etcd]
// (its client, lock and verdicts are built once; with [etcd], the
// verdicts' timing and scope derive from [global] and the checks, so
// those cannot change either).
func fixedKeys(cur, next *Config) []string {
	var keys []string
	differ := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	g, h := cur.Global, next.Global
	differ("[global] port", g.Port, h.Port)
	differ("[global] listen", cur.ListenAddress(), next.ListenAddress())
	differ("[global] lockdir", g.LockDir, h.LockDir)
	differ("[global] log", g.Log, h.Log)
	differ("[global] journal", g.Journal, h.Journal)
	differ("[global] target", g.Target, h.Target)
	differ("[[user]]", cur.Users, next.Users)
	switch {
	case (cur.Etcd == nil) != (next.Etcd == nil):
		keys = append(keys, "[etcd] (added or removed: the lock backend)")
	case cur.Etcd != nil:
		keys = append(keys, etcdKeys(cur.Etcd, next.Etcd)...)
	}
	return slices.Compact(keys)
}

// etcdKeys names the [etcd] keys that differ, and for the values the
// daemon derives from other sections, those sections' keys.
func etcdKeys(a, b *etcd.Config) []string {
	derived := map[string]string{
		"Interval":   "[global] interval (with [etcd]: the verdict TTL derives from it)",
		"RoundBound": "[global] maxattempts, attempt_interval or a check timeout (with [etcd]: the verdict TTL derives from the round's bound)",
		"Target":     "[global] target",
		"Digest":     "[primary] (with [etcd] quorum: the verdicts' scope)",
	}
	if a.Quorum == 0 && b.Quorum == 0 {
		// Without verdicts nothing uses what is derived.
		derived = map[string]string{"Interval": "", "RoundBound": "", "Target": "", "Digest": ""}
	}
	var keys []string
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		if tag := f.Tag.Get("toml"); tag != "" && tag != "-" {
			keys = append(keys, "[etcd] "+tag)
		} else if k, ok := derived[f.Name]; ok {
			if k != "" {
				keys = append(keys, k)
			}
		} else {
			keys = append(keys, "[etcd] ("+f.Name+")")
		}
	}
	return keys
}
