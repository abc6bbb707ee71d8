package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

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

// scrape returns the samples of a real daemon's /metrics, by series
// (name{labels} as exposed).
func scrape(t *testing.T, r *running) map[string]float64 {
	t.Helper()
	resp, body, err := request(context.Background(), "GET", r.url+"/metrics", "ops", "pw")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %v %v", resp, err)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// Issue 15: /metrics serves fstaid_build_info, every failover counter at
// 0 before the first failover, and when the last healthy round ended;
// scraped from a real daemon, before and after a failover.
func TestMetricsBuildInfoFailoversAndLastHealthyRound(t *testing.T) {
	e := newEnv(t, 0, users)
	start := time.Now()
	finished, release := make(chan struct{}), make(chan struct{})
	hold := func(n fstaid.Notice) {
		if n.Kind == fstaid.NoticeFailoverFinished {
			close(finished)
			<-release // the metrics observer, before this one, counted it
		}
	}
	r := e.start(fstaid.WithObserver(hold))
	r.waitState(t, fstaid.StateArmed)
	before := scrape(t, r)
	info := fmt.Sprintf(`fstaid_build_info{commit=%q,goversion=%q,version=%q}`, commit(), runtime.Version(), buildVersion)
	if before[info] != 1 {
		t.Errorf("no %s 1 in /metrics: %v", info, before)
	}
	for _, reason := range []string{"auto", "manual"} {
		for _, outcome := range []string{"done", "handler-failed"} {
			series := fmt.Sprintf(`fstaid_failovers_total{outcome=%q,reason=%q}`, outcome, reason)
			if v, ok := before[series]; !ok || v != 0 {
				t.Errorf("%s = %v (present %v), want 0 before any failover", series, v, ok)
			}
		}
	}
	healthy := before["fstaid_last_healthy_round_timestamp_seconds"]
	if healthy < float64(start.Unix()) || healthy > float64(time.Now().Unix()+1) {
		t.Errorf("fstaid_last_healthy_round_timestamp_seconds = %v, want between %v and now", healthy, start.Unix())
	}
	// Rounds go on: the time moves with them.
	waitFor(t, 10*time.Second, func() error {
		if now := scrape(t, r)["fstaid_last_healthy_round_timestamp_seconds"]; now <= healthy {
			return fmt.Errorf("last healthy round still %v", now)
		}
		return nil
	})
	e.touch("dead")
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("no failover")
	}
	after := scrape(t, r)
	close(release)
	if v := after[`fstaid_failovers_total{outcome="done",reason="auto"}`]; v != 1 {
		t.Errorf("fstaid_failovers_total{auto,done} = %v after the failover, want 1", v)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("exit %d, want %d", code, exitFailedOver)
	}
}
