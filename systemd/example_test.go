package systemd_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/systemd"
)

// Wiring a daemon to systemd: the activated socket, journald when stderr
// is the journal, READY=1 once serving, a watchdog tied to the monitor's
// deadline, STOPPING=1 on the way out.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	if systemd.JournalStream() {
		slog.SetDefault(slog.New(systemd.NewJournalHandler(nil)))
	}
	activated, err := systemd.Listeners()
	if err != nil {
		slog.Error("socket activation", "error", err)
		return
	}
	m, err := fstaid.New( /* checks, handlers, lock ... */ )
	if err != nil {
		slog.Error("configuration", "error", err)
		return
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second /* , Handler: /fail, /status ... */}
	for _, l := range activated["fail"] {
		go srv.Serve(l)
	}

	n := systemd.NewNotifier()
	n.Ready()
	if interval, ok := systemd.WatchdogInterval(); ok {
		go systemd.RunWatchdog(ctx, n, interval, func(now time.Time) bool {
			// Zero while Run is not running (before it starts, after it
			// returns): nothing is stuck, keep pinging.
			dl := m.Status().Deadline
			return dl.IsZero() || now.Before(dl)
		})
	}
	err = m.Run(ctx)
	n.Stopping()
	srv.Shutdown(context.Background())
	slog.Info("stopped", "error", err)
}
