package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/fstaid/fstaid"
	awsx "github.com/fstaid/fstaid/contrib/aws"
	"github.com/fstaid/fstaid/contrib/etcd"
	"github.com/fstaid/fstaid/systemd"
)

// Exit statuses, as the unit file and the README use them. 1 and 2 are
// never used: Go exits 2 on a panic and on SIGABRT (the watchdog's
// signal), and those must be restarted.
const (
	exitOK            = 0  // stopped by a signal, no failover
	exitFailedOver    = 10 // failover done, every handler succeeded
	exitHandlerFailed = 11 // failover done, a handler failed: page someone
	exitLocked        = 12 // a failover record exists at start-up
	exitStartupCheck  = 13 // the start-up check failed (startup_check = "exit")
	exitSelfCheck     = 14 // the self check failed: this monitor is cut off
	exitSoftware      = 70 // an unexpected error (EX_SOFTWARE): restarted
	exitConfig        = 78 // configuration error (EX_CONFIG): not restarted
)

// exitCode maps Run's result to the exit status.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, fstaid.ErrHandlerFailed):
		return exitHandlerFailed
	case errors.Is(err, fstaid.ErrFailedOver):
		return exitFailedOver
	case errors.Is(err, fstaid.ErrLocked):
		return exitLocked
	case errors.Is(err, fstaid.ErrStartupCheck):
		return exitStartupCheck
	case errors.Is(err, fstaid.ErrSelfCheck):
		return exitSelfCheck
	case errors.Is(err, fstaid.ErrLockUnavailable) && transientLockError(err):
		return exitSoftware
	case errors.Is(err, fstaid.ErrLockUnavailable), errors.Is(err, errConfig):
		return exitConfig
	}
	return exitSoftware
}

// transientLockError reports whether the lock failed for a reason of the
// moment that a restart may find gone (a full file system, an I/O
// error): exit 70 and let systemd retry, rather than 78, which it never
// restarts. A lock directory that cannot be written for want of
// permission, on a read-only mount (most often the unit's
// ProtectSystem=strict without the directory in ReadWritePaths=), or
// that cannot publish exclusively stays 78: an operator must act.
func transientLockError(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// drainsOnExit reports whether fstaidd must answer the connections queued
// on its socket before exiting with code: the exits systemd does not
// restart. After the others (a signal, a restartable failure) the queue
// stays with systemd for the next instance.
func drainsOnExit(code int) bool {
	switch code {
	case exitFailedOver, exitHandlerFailed, exitLocked, exitConfig:
		return true
	}
	return false
}

// daemon holds what the daemon's parts share; tests build one too.
type daemon struct {
	configPath string
	stderr     io.Writer
	// extraOpts are appended to the Monitor's options (the demo's
	// observer, tests).
	extraOpts []fstaid.Option
	// serving, when set, is called with the endpoint's addresses once it
	// serves.
	serving func([]net.Addr)
	// listen, when set, replaces net.Listen for the endpoint: tests run
	// the daemon under testing/synctest on an in-memory listener, since
	// a goroutine blocked on a real socket keeps fake time still.
	listen func(network, address string) (net.Listener, error)
}

// run is the daemon: it returns the exit status. Every exit goes
// through here: start returns why the daemon stopped, exitStatus maps
// that to the status, and connections queued on an activated socket are
// answered when systemd will not restart us.
func (d *daemon) run(ctx context.Context) int {
	// Take the activated sockets first, whatever happens next: on a bad
	// config the queued connections must still be answered.
	activated, actErr := systemd.Listeners()
	s := &session{failLs: pickFailListeners(activated), logger: fallbackLogger(d.stderr), logsToStderr: !systemd.JournalStream()}
	defer s.close()
	err := d.start(ctx, s, actErr)
	code := exitStatus(err)
	if !s.serving && drainsOnExit(code) {
		// The monitor never served: tell the queued requests why.
		serveDrain(s.failLs, configErrorHandler(err), s.logger)
	}
	if code == exitConfig && err != nil && isTerminal(d.stderr) {
		// A person at a terminal reads every problem on a line of its
		// own; the log (a file, the journal) keeps its one-line record.
		fmt.Fprintln(d.stderr, err)
		if s.logsToStderr {
			return code
		}
	}
	logExit(s.logger, code, err)
	return code
}

// exitStatus is exitCode, except that an etcd outage is never a
// configuration error: systemd restarts us.
func exitStatus(err error) int {
	code := exitCode(err)
	if code == exitConfig && etcdUnavailable(err) {
		code = exitSoftware
	}
	return code
}

// session is what one run of the daemon holds until it exits.
type session struct {
	failLs  []net.Listener // the activated "fail" sockets, if any
	logger  *slog.Logger   // the fallback logger until the config names one
	logFile *reopenFile
	// logsToStderr: logger writes text to stderr (not a file, not the
	// journal).
	logsToStderr bool
	serving      bool // the HTTP server answers on the listeners
	closers      []func()
}

func (s *session) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}

// configError marks err as a configuration error (exit status 78).
func configError(err error) error {
	if errors.Is(err, errConfig) {
		return err
	}
	return fmt.Errorf("%w: %w", errConfig, err)
}

// start loads the config, builds the monitor, serves the API and runs
// the monitor until it stops; it returns why.
func (d *daemon) start(ctx context.Context, s *session, actErr error) error {
	cfg, err := LoadConfig(d.configPath)
	if err != nil {
		return err
	}
	logger, logFile, err := newLogger(cfg, d.stderr)
	if err != nil {
		return configError(err)
	}
	s.logger, s.logFile = logger, logFile
	s.logsToStderr = logFile == nil && !cfg.Global.Journal && !systemd.JournalStream()
	// SIGHUP reopens the log file and reloads the configuration
	// (reload.go); without a handler it would kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloads := newReloader(d.configPath, cfg, logger, logFile)
	reloaded := make(chan struct{})
	s.closers = append(s.closers, func() {
		signal.Stop(hup) // before close: the signal package must not send to a closed channel
		close(hup)
		<-reloaded
	})
	go func() {
		defer close(reloaded)
		reloads.serve(ctx, hup)
	}()
	if actErr != nil {
		logger.Warn("socket activation: ignoring the passed sockets", "error", actErr)
	}

	notifier := systemd.NewNotifier()
	met := newMetrics()
	rec := &recent{}
	st := &statusLine{n: notifier, target: cfg.Global.Target}
	// Readiness runs count their EC2 requests (readiness.go).
	awsOpts := []awsx.Option{awsx.WithReadinessCalls(met.readiness.awsCall)}
	opts, err := cfg.Options(ctx, logger, awsOpts...)
	if err != nil {
		return configError(err)
	}
	var lock fstaid.Lock = cfg.FileLock
	var store *etcd.Store
	if cfg.Etcd != nil {
		store, err = openEtcd(cfg, logger)
		if err != nil {
			// An outage (etcdUnavailable: restarted, the queued
			// connections stay with systemd for the next instance) or
			// a configuration error.
			return err
		}
		s.closers = append(s.closers, func() { store.Close() })
		if err := etcdStartup(ctx, cfg, store, logger); err != nil {
			return configError(err)
		}
		lock = etcdLock(cfg, store)
		opts = append(opts, etcdOptions(cfg, store, lock)...)
	} else {
		opts = append(opts, fstaid.WithLock(lock))
	}
	notes, err := newNotifications(cfg, logger)
	if err != nil {
		return configError(err)
	}
	defer func() { closeNotifications(notes, reloads.config(), logger) }()
	met.reg.MustRegister(newNotifyCollector(notes))
	opts = append(opts, fstaid.WithLogger(logger),
		fstaid.WithObserver(met.observe), fstaid.WithObserver(st.observe), fstaid.WithObserver(rec.observe),
		fstaid.WithObserver(newPageReleaser(logger, os.Getenv).observe), fstaid.WithNotifications(notes))
	opts = append(opts, d.extraOpts...)
	m, err := fstaid.New(opts...)
	if err != nil {
		return configError(err)
	}
	reloads.attach(m, notes, store, notifier, st, awsOpts...)
	met.readiness.watch(m)

	listeners := s.failLs
	if len(listeners) == 0 {
		listen := net.Listen
		if d.listen != nil {
			listen = d.listen
		}
		l, err := listen("tcp", cfg.ListenAddress())
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w", cfg.ListenAddress(), err)
		}
		listeners = []net.Listener{l}
	} else if len(cfg.Users) == 0 {
		for _, l := range listeners {
			if !isLoopback(l.Addr().String()) {
				return fmt.Errorf("%w: the activated socket %s is not loopback and no [[user]] is configured: anyone could fail over", errConfig, l.Addr())
			}
		}
	}

	a := &api{monitor: m, auth: newAuth(cfg.Users), lock: fmt.Sprint(lock), logger: logger, gather: met.reg, etcd: store, recent: rec, stopping: ctx,
		reloads: reloads}
	srv := newHTTPServer(a.handler(), logger)
	var serving sync.WaitGroup
	var drains []*drainingListener
	var addrs []net.Addr
	for _, l := range listeners {
		dl := &drainingListener{Listener: l}
		drains = append(drains, dl)
		addrs = append(addrs, l.Addr())
		serving.Add(1)
		go func() {
			defer serving.Done()
			srv.Serve(dl)
		}()
	}
	s.serving = true
	logger.Info("serving", "addresses", fmt.Sprint(addrs), "activated", len(s.failLs) > 0, "lock", fmt.Sprint(lock),
		"version", version())
	notifier.Ready()
	if d.serving != nil {
		d.serving(addrs)
	}

	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	if interval, ok := systemd.WatchdogInterval(); ok {
		healthy := func(now time.Time) bool {
			dl := m.Status().Deadline
			return dl.IsZero() || now.Before(dl)
		}
		go systemd.RunWatchdog(wdCtx, notifier, interval, healthy)
		logger.Info("watchdog enabled", "ping_interval", interval, "round_bound", m.RoundBound(), "failover_bound", m.FailoverBound())
	}

	runErr := m.Run(ctx)
	notifier.Stopping()
	if drainsOnExit(exitStatus(runErr)) {
		for _, dl := range drains {
			dl.drain()
		}
		serving.Wait()
	}
	// In-flight requests (a /fail running its failover) finish first.
	sctx, cancel := context.WithTimeout(context.Background(), m.FailoverBound())
	srv.Shutdown(sctx)
	cancel()
	serving.Wait()
	if runErr == nil {
		// A /fail that raced the shutdown may have failed over.
		if rec := m.Status().Record; rec != nil && m.Status().State == fstaid.StateFailedOver {
			if rec.State == fstaid.RecordHandlerFailed {
				return fmt.Errorf("a manual failover finished as fstaidd stopped: %w", fstaid.ErrHandlerFailed)
			}
			return fmt.Errorf("a manual failover finished as fstaidd stopped: %w", fstaid.ErrFailedOver)
		}
	}
	return runErr
}

func logExit(logger *slog.Logger, code int, err error) {
	msg := map[int]string{
		exitOK:            "stopped",
		exitFailedOver:    "failed over; every handler succeeded; not restarting until re-armed",
		exitHandlerFailed: "failed over, but a handler failed: check the record and finish the failover by hand",
		exitLocked:        "a failover record exists (found at start-up, or another monitor failed over): not failing over; re-arm with fstaidd unlock",
		exitStartupCheck:  "start-up check failed",
		exitSelfCheck:     "self check failed: this monitor is cut off",
		exitConfig:        "configuration error",
		exitSoftware:      "unexpected error",
	}[code]
	level := slog.LevelError
	if code == exitOK || code == exitFailedOver {
		level = slog.LevelWarn
	}
	attrs := []any{"exit_status", code, "event", "exit"}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	logger.Log(context.Background(), level, msg, attrs...)
}

// pickFailListeners returns the sockets named "fail" (FileDescriptorName),
// or the only socket passed when it has no name.
func pickFailListeners(byName map[string][]net.Listener) []net.Listener {
	if ls := byName["fail"]; len(ls) > 0 {
		return ls
	}
	var all []net.Listener
	for _, ls := range byName {
		all = append(all, ls...)
	}
	if len(all) == 1 {
		return all
	}
	return nil
}

func fallbackLogger(w io.Writer) *slog.Logger {
	if systemd.JournalStream() {
		return slog.New(systemd.NewJournalHandler(nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
