package main

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fstaid/fstaid"
)

// metrics are fstaidd's Prometheus metrics, fed by Monitor notices.
type metrics struct {
	reg       *prometheus.Registry
	rounds    *prometheus.CounterVec
	checks    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	state     *prometheus.GaugeVec
	failovers *prometheus.CounterVec
	lockErrs  prometheus.Counter
	// lastHealthy is when the last healthy round finished.
	lastHealthy prometheus.Gauge
	// readiness exports the last readiness run (readiness.go).
	readiness *readinessMetrics
}

var states = []fstaid.State{
	fstaid.StateNew, fstaid.StateStarting, fstaid.StateUnarmed, fstaid.StateArmed,
	fstaid.StateFailingOver, fstaid.StateFailedOver, fstaid.StateLocked, fstaid.StateStopped,
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fstaid_rounds_total", Help: "Monitoring rounds by verdict.",
		}, []string{"verdict"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fstaid_check_results_total", Help: "Check runs by check and result (pass, fail, timeout); every attempt of the primary counts.",
		}, []string{"check", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fstaid_check_duration_seconds", Help: "Durations of check runs, every attempt counted.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"check"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fstaid_state", Help: "1 for the monitor's current state.",
		}, []string{"state"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fstaid_failovers_total", Help: "Failovers by reason and outcome (done, handler-failed).",
		}, []string{"reason", "outcome"}),
		lockErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fstaid_lock_unavailable_total", Help: "Failovers not run because the lock could not be taken (fail closed).",
		}),
		lastHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fstaid_last_healthy_round_timestamp_seconds",
			Help: "When the last healthy round (the primary check passed; start-up checks count) finished, as a Unix time; 0 before the first.",
		}),
		readiness: newReadinessMetrics(),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fstaid_build_info", Help: "Always 1: the labels say which fstaidd runs.",
	}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(buildVersion, commit(), runtime.Version()).Set(1)
	// Every failover series exists at 0 from the start, so that an alert
	// on increase() or rate() sees the first failover.
	for _, reason := range []fstaid.Reason{fstaid.ReasonAuto, fstaid.ReasonManual} {
		for _, outcome := range []fstaid.RecordState{fstaid.RecordDone, fstaid.RecordHandlerFailed} {
			m.failovers.WithLabelValues(string(reason), string(outcome))
		}
	}
	m.reg.MustRegister(m.rounds, m.checks, m.latency, m.state, m.failovers, m.lockErrs, m.lastHealthy, buildInfo, m.readiness,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.setState(fstaid.StateNew)
	return m
}

func (m *metrics) setState(s fstaid.State) {
	for _, st := range states {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(string(st)).Set(v)
	}
}

// observe is a fstaid.WithObserver function. Check results count every
// run, each primary attempt included, so a flapping target that passes
// on the second attempt shows in fstaid_check_results_total{result="fail"}.
func (m *metrics) observe(n fstaid.Notice) {
	m.setState(n.State)
	switch n.Kind {
	case fstaid.NoticeCheck:
		r := n.Result
		result := "pass"
		switch {
		case r.TimedOut:
			result = "timeout"
		case !r.Passed:
			result = "fail"
		}
		m.checks.WithLabelValues(r.Name, result).Inc()
		m.latency.WithLabelValues(r.Name).Observe(r.Duration.Seconds())
	case fstaid.NoticeRound:
		m.rounds.WithLabelValues(string(n.Round.Verdict)).Inc()
		if v := n.Round.Verdict; v == fstaid.VerdictHealthy || v == fstaid.VerdictStartupPassed {
			end := n.Time
			if end.IsZero() {
				end = time.Now()
			}
			m.lastHealthy.Set(float64(end.UnixNano()) / 1e9)
		}
	case fstaid.NoticeLockUnavailable:
		m.lockErrs.Inc()
	case fstaid.NoticeFailoverFinished:
		if n.Record != nil {
			m.failovers.WithLabelValues(string(n.Record.Reason()), string(n.Record.State)).Inc()
		}
	}
}
