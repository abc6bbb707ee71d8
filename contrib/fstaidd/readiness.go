package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// Failover readiness: [global] readiness_interval turns on the library's
// readiness runs (fstaid.WithReadiness); fstaidd shows their result in
// /status, `fstaidd status`, STATUS= and /metrics. The checks themselves
// are the library's (the lock pre-flight, the handler script), contrib/aws's
// (DryRun and Validate of each handler) and contrib/etcd's (the quorum).

// defaultReadinessInterval is [global] readiness_interval when unset: a
// few Describe and DryRun calls every 5 minutes cost nothing against
// EC2's rate limits, and a path that rots is known within 5 minutes.
const defaultReadinessInterval = 5 * time.Minute

// decodeReadiness reads [global] readiness_interval: seconds (or a Go
// duration; config.ParseSeconds refuses a negative one), 0 turns
// readiness off.
func (g *Global) decodeReadiness(t *config.Table) {
	if v, ok := t.Seconds("readiness_interval"); ok {
		g.ReadinessInterval = v
	}
}

// Readiness states in /status and `fstaidd status`.
const (
	readinessReady    = "ready"
	readinessNotReady = "not-ready"
	readinessUnknown  = "unknown" // on, but no run has finished yet
)

// readinessState is /status's readiness: "" when off.
func readinessState(on bool, r *fstaid.Readiness) string {
	switch {
	case r == nil && on:
		return readinessUnknown
	case r == nil:
		return ""
	case r.Ready:
		return readinessReady
	}
	return readinessNotReady
}

// readinessOn reports whether the running configuration has readiness
// runs (a reload may turn them on or off).
func (a *api) readinessOn() bool {
	return a.reloads != nil && a.reloads.config().Global.ReadinessInterval > 0
}

// notReadyLine is STATUS='s part while not ready: each problem's kind,
// resource and action, without the messages (the journal has them).
func notReadyLine(r *fstaid.Readiness) string {
	if r == nil || r.Ready {
		return ""
	}
	var ps []string
	for _, p := range r.Problems {
		s := string(p.Kind) + " " + p.Resource
		if p.Action != "" {
			s += " (" + p.Action + ")"
		}
		ps = append(ps, s)
	}
	return "NOT READY to fail over: " + strings.Join(ps, ", ")
}

// problemKinds are the kinds fstaid_readiness_problems always exports,
// 0 when none.
var problemKinds = []fstaid.ProblemKind{
	fstaid.ProblemLock, fstaid.ProblemHandler, fstaid.ProblemPermission, fstaid.ProblemResource,
	fstaid.ProblemStore, fstaid.ProblemQuorum, fstaid.ProblemUnverified,
}

// readinessMetrics exports the last readiness run, read from the Monitor
// at each scrape, and counts the EC2 calls readiness runs make. Nothing
// of the run's result is exported before the first run has finished: an
// alert on fstaid_failover_ready == 0 must not fire for a monitor that
// has not checked yet.
type readinessMetrics struct {
	awsCalls *prometheus.CounterVec

	mu     sync.Mutex
	status func() *fstaid.Readiness // nil until the Monitor exists

	ready, problems, checked, duration *prometheus.Desc
}

func newReadinessMetrics() *readinessMetrics {
	return &readinessMetrics{
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fstaid_readiness_aws_calls_total",
			Help: "EC2 API requests sent by readiness runs (DryRun and Describe), by action; retries included.",
		}, []string{"action"}),
		ready: prometheus.NewDesc("fstaid_failover_ready",
			"1 when the last readiness run found the failover path ready, 0 when not; absent before the first run or with readiness_interval = 0.", nil, nil),
		problems: prometheus.NewDesc("fstaid_readiness_problems",
			"Problems the last readiness run found, by kind (lock, handler, permission, resource, store, quorum, unverified).", []string{"kind"}, nil),
		checked: prometheus.NewDesc("fstaid_readiness_last_run_timestamp_seconds",
			"When the last readiness run started, as a Unix time.", nil, nil),
		duration: prometheus.NewDesc("fstaid_readiness_last_run_duration_seconds",
			"How long the last readiness run took.", nil, nil),
	}
}

// watch makes the collector read m's readiness.
func (r *readinessMetrics) watch(m *fstaid.Monitor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = func() *fstaid.Readiness { return m.Status().Readiness }
}

// awsCall is contrib/aws's WithReadinessCalls function.
func (r *readinessMetrics) awsCall(operation string) { r.awsCalls.WithLabelValues(operation).Inc() }

// Describe is prometheus.Collector's.
func (r *readinessMetrics) Describe(ch chan<- *prometheus.Desc) {
	r.awsCalls.Describe(ch)
	ch <- r.ready
	ch <- r.problems
	ch <- r.checked
	ch <- r.duration
}

// Collect is prometheus.Collector's.
func (r *readinessMetrics) Collect(ch chan<- prometheus.Metric) {
	r.awsCalls.Collect(ch)
	r.mu.Lock()
	status := r.status
	r.mu.Unlock()
	if status == nil {
		return
	}
	rd := status()
	if rd == nil {
		return
	}
	ready := 0.0
	if rd.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(r.ready, prometheus.GaugeValue, ready)
	counts := map[fstaid.ProblemKind]int{}
	for _, p := range rd.Problems {
		counts[p.Kind]++
	}
	for _, k := range problemKinds {
		ch <- prometheus.MustNewConstMetric(r.problems, prometheus.GaugeValue, float64(counts[k]), string(k))
		delete(counts, k)
	}
	for k, n := range counts { // a kind of another ReadinessCheck
		ch <- prometheus.MustNewConstMetric(r.problems, prometheus.GaugeValue, float64(n), string(k))
	}
	ch <- prometheus.MustNewConstMetric(r.checked, prometheus.GaugeValue, float64(rd.Checked.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(r.duration, prometheus.GaugeValue, rd.Duration.Seconds())
}

// showReadiness is `fstaidd status`'s readiness: one line, and each
// problem on its own while not ready; nothing with readiness off.
func showReadiness(p func(string, ...any), st *statusResponse, now time.Time) {
	switch st.Readiness {
	case "":
	case readinessUnknown:
		p("readiness: unknown (no run has finished yet)")
	case readinessReady:
		p("readiness: ready (checked %s)", when(st.ReadinessChecked, now))
	default:
		p("readiness: NOT READY (checked %s): a failover now would not work as configured", when(st.ReadinessChecked, now))
		for _, pr := range st.ReadinessProblems {
			what := string(pr.Kind) + " " + pr.Resource
			if pr.Action != "" {
				what += fmt.Sprintf(" (%s)", pr.Action)
			}
			p("  %s: %s", what, shorten(pr.Message, 240))
		}
	}
}
