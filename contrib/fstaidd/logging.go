package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/fstaid/fstaid/systemd"
)

// newLogger picks where the daemon logs: journald with structured fields
// when stderr is the journal (JOURNAL_STREAM) or [global] journal is set
// — not merely because a journal exists on the host; else [global] log,
// reopened on SIGHUP for logrotate; else stderr. It returns the logger
// and, for a log file, the file (to reopen and close).
func newLogger(cfg *Config, stderr io.Writer) (*slog.Logger, *reopenFile, error) {
	level := slog.LevelInfo
	if cfg.Global.Mode == "debug" {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Global.Journal || systemd.JournalStream() {
		return slog.New(systemd.NewJournalHandler(&systemd.JournalOptions{HandlerOptions: *opts})), nil, nil
	}
	if cfg.Global.Log != "" {
		f := &reopenFile{path: cfg.Global.Log}
		if err := f.Reopen(); err != nil {
			return nil, nil, fmt.Errorf("[global] log: %w", err)
		}
		return slog.New(slog.NewTextHandler(f, opts)), f, nil
	}
	return slog.New(slog.NewTextHandler(stderr, opts)), nil, nil
}

// reopenFile is an append-only log file that logrotate can move away:
// Reopen (on SIGHUP) starts writing to a new file at the same path.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// Reopen opens the path again, closing the previous file.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}
