package main

import (
	"context"
	"log/slog"
	"os/exec"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// NotifySection is [notify]: keepalived's notify script, run on every
// state transition (fstaid.WithNotifications).
type NotifySection struct {
	Command string
	// Timeout bounds each run; default fstaid.DefaultNotifyTimeout.
	Timeout time.Duration
	script  *fstaid.ScriptNotifier
}

func decodeNotifySection(t *config.Table) *NotifySection {
	s := &NotifySection{Timeout: fstaid.DefaultNotifyTimeout}
	s.Command, _ = t.String("command")
	s.script = fstaid.NotifyScript(s.Command)
	if s.Command == "" {
		t.Errorf("command", "is required")
	} else if err := s.script.Err(); err != nil {
		t.Errorf("command", "%v", err)
	} else if _, err := exec.LookPath(s.script.Path()); err != nil {
		// Found missing now, not when the pager needed it.
		t.Errorf("command", "%s is not an executable file: %v", s.script.Path(), unwrapPath(err))
	}
	if v, ok := t.Seconds("timeout"); ok {
		if v <= 0 {
			t.Errorf("timeout", "must be more than 0 seconds")
		}
		s.Timeout = v
	}
	t.Done()
	return s
}

// notifier returns the Notifier and timeout [notify] sets: none without
// the section.
func (s *NotifySection) notifier() (fstaid.Notifier, time.Duration) {
	if s == nil {
		return nil, fstaid.DefaultNotifyTimeout
	}
	return s.script, s.Timeout
}

// newNotifications is the daemon's queue of transitions: it exists with
// or without [notify], so that a reload can add one.
func newNotifications(cfg *Config, logger *slog.Logger) (*fstaid.Notifications, error) {
	n, timeout := cfg.Notify.notifier()
	return fstaid.NewNotifications(n, timeout, logger.With("notify", cfg.Notify.command()))
}

func (s *NotifySection) command() string {
	if s == nil {
		return ""
	}
	return s.Command
}

// closeNotifications delivers what is queued when fstaidd stops — the
// final stopped or failed-over — within two timeouts (one running
// before it, then its own), and logs what it had to cut.
func closeNotifications(q *fstaid.Notifications, cfg *Config, logger *slog.Logger) {
	_, timeout := cfg.Notify.notifier()
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout+time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		logger.Warn("not every state notification was delivered before exit", "event", "notify-dropped", "error", err)
	}
}

// notifyCollector exports a Notifications' counts as
// fstaid_notifications_total{result}.
type notifyCollector struct {
	q    *fstaid.Notifications
	desc *prometheus.Desc
}

func newNotifyCollector(q *fstaid.Notifications) *notifyCollector {
	return &notifyCollector{q: q, desc: prometheus.NewDesc("fstaid_notifications_total",
		"State notifications ([notify] command) by result: delivered, failed (non-zero exit or timeout), dropped (queue full, or cut at exit).",
		[]string{"result"}, nil)}
}

func (c *notifyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *notifyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.q.Stats()
	for _, v := range []struct {
		result string
		n      uint64
	}{{"delivered", st.Delivered}, {"failed", st.Failed}, {"dropped", st.Dropped}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.n), v.result)
	}
}
