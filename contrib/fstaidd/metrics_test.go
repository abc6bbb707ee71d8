package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fstaid/fstaid"
)

// A round saved by its second attempt still counts the failed first one.
func TestMetricsCountEveryAttempt(t *testing.T) {
	m := newMetrics()
	check := func(passed bool) fstaid.Notice {
		return fstaid.Notice{Kind: fstaid.NoticeCheck, State: fstaid.StateArmed,
			Result: &fstaid.Result{Name: "primary", Passed: passed}}
	}
	m.observe(check(false))
	m.observe(check(true))
	m.observe(fstaid.Notice{Kind: fstaid.NoticeRound, State: fstaid.StateArmed,
		Round: &fstaid.Round{Verdict: fstaid.VerdictHealthy, Primary: &fstaid.Result{Name: "primary", Passed: true, Attempts: 2}}})

	for _, tt := range []struct {
		result string
		want   float64
	}{{"fail", 1}, {"pass", 1}} {
		if got := testutil.ToFloat64(m.checks.WithLabelValues("primary", tt.result)); got != tt.want {
			t.Errorf("check_results_total{primary,%s} = %v, want %v", tt.result, got, tt.want)
		}
	}
	if got := testutil.ToFloat64(m.rounds.WithLabelValues("healthy")); got != 1 {
		t.Errorf("rounds_total{healthy} = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.latency); got != 1 {
		t.Errorf("duration histograms = %d, want 1 (primary)", got)
	}
}
