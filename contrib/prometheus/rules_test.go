// Package prometheus holds fstaidd's Prometheus alert rules
// (fstaid.rules.yml) and their promtool unit tests
// (fstaid.rules.test.yml); its test runs promtool on both. That the
// rules and the Grafana dashboard use only metrics fstaidd exports is
// checked in contrib/fstaidd (monitoring_test.go), against a real daemon.
package prometheus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	rulesFile = "fstaid.rules.yml"
	testsFile = "fstaid.rules.test.yml"
)

// needPromtool returns promtool's path. Without it the test skips, unless
// FSTAID_E2E_REQUIRE=1 (CI, which installs it: .ci/run), where its
// absence fails: rules that were never checked prove nothing.
func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("FSTAID_E2E_REQUIRE") == "1" {
			t.Fatalf("promtool not found and FSTAID_E2E_REQUIRE=1 (.ci/run installs it from the Debian package prometheus): %v", err)
		}
		t.Skipf("promtool not found (Debian: the package prometheus; .ci/run installs only /usr/bin/promtool): %v", err)
	}
	return p
}

func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, needPromtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// alerts lists the alert names of the rules file, in order.
func alerts(t *testing.T, rules string) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)\s*$`).FindAllStringSubmatch(rules, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%s: no alerts", rulesFile)
	}
	return names
}

func TestRulesCheck(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := promtool(t, ".", "check", "rules", rulesFile)
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	if want := "SUCCESS: " + strconv.Itoa(len(alerts(t, string(b)))) + " rules found"; !strings.Contains(out, want) {
		t.Errorf("promtool check rules: %q, want %q", out, want)
	}
}

// TestRulesTest runs the promtool unit tests, and checks that they cover
// every alert: each is expected silent on the healthy monitor and firing
// on series of its own.
func TestRulesTest(t *testing.T) {
	out, err := promtool(t, ".", "test", "rules", testsFile)
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", testsFile, err, out)
	}
	rules, _ := os.ReadFile(rulesFile)
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts(t, string(rules)) {
		silent := regexp.MustCompile(`alertname: `+a+`, exp_alerts: \[\]`).FindAllString(string(tests), -1)
		firing := regexp.MustCompile(`(?m)^\s+alertname: `+a+`\n\s+exp_alerts:\n\s+- exp_labels:`).FindAllString(string(tests), -1)
		if len(silent) == 0 || len(firing) == 0 {
			t.Errorf("%s: alert %s is expected silent %d times and firing %d times; want both", testsFile, a, len(silent), len(firing))
		}
	}
}

// The tests above would pass on rules promtool never evaluated: a broken
// rule must fail them.
func TestRulesTestCatchesABrokenRule(t *testing.T) {
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(rules), `expr: up{job="fstaid"} == 0`, `expr: up{job="fstaid"} == 2`, 1)
	if broken == string(rules) {
		t.Fatalf("%s: no FstaidDown expression to break", rulesFile)
	}
	os.WriteFile(filepath.Join(dir, rulesFile), []byte(broken), 0o644)
	os.WriteFile(filepath.Join(dir, testsFile), tests, 0o644)
	out, err := promtool(t, dir, "test", "rules", testsFile)
	if err == nil || !strings.Contains(out, "FstaidDown") {
		t.Errorf("promtool test rules with FstaidDown broken: %v, want a failure naming it:\n%s", err, out)
	}
}
