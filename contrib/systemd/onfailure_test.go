// Tests for the OnFailure= example: fstaidd-onfailure@.service, started
// by the drop-in fstaidd.service.d/onfailure.conf.
package systemd_test

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const (
	onFailure     = "fstaidd-onfailure@.service"
	onFailureDrop = "fstaidd.service.d/onfailure.conf"
)

func TestOnFailureVerify(t *testing.T) {
	files := templateFiles(t, nil)
	files[onFailure] = forVerify(t, onFailure)
	b, err := os.ReadFile(onFailureDrop)
	if err != nil {
		t.Fatal(err)
	}
	// The drop-in, as its comment says, for fstaidd.service and for
	// every instance.
	files["fstaidd@.service.d/onfailure.conf"] = string(b)
	files["fstaidd.service.d/onfailure.conf"] = string(b)
	for _, u := range units {
		files[u] = forVerify(t, u)
	}
	names := []string{"fstaidd@db1.service", "fstaidd.service", "fstaidd-onfailure@fstaidd@db1.service", "fstaidd-onfailure@fstaidd.service"}
	stderr, err := verifyFiles(t, files, names...)
	if err != nil || stderr != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(names, " "), err, stderr)
	}
	files[onFailure] = strings.Replace(files[onFailure], "\nTimeoutStartSec=", "\nTimeoutStartSecs=", 1)
	if stderr, _ := verifyFiles(t, files, "fstaidd@db1.service"); !strings.Contains(stderr, "TimeoutStartSecs") {
		t.Errorf("verify of fstaidd@db1.service with the drop-in did not read %s (a misspelt key went unseen): %q", onFailure, stderr)
	}
}

// TestOnFailureSettings pins what verify cannot see: the drop-in names a
// unit that exists (a misspelt OnFailure= target passes verify) and makes
// exit 10 a failure, and the statuses it is for are still those the units
// never restart.
func TestOnFailureSettings(t *testing.T) {
	drop := parseUnit(t, onFailureDrop)
	if got := drop["Unit"]["OnFailure"]; !slices.Equal(got, []string{"fstaidd-onfailure@%N.service"}) {
		t.Errorf("%s: OnFailure = %q, want fstaidd-onfailure@%%N.service", onFailureDrop, got)
	}
	// One trigger only: with OnSuccess= to the same unit too, systemd 252
	// passes no MONITOR_* variables.
	if got, ok := drop["Unit"]["OnSuccess"]; ok {
		t.Errorf("%s: OnSuccess = %q: systemd would then pass the command no MONITOR_* variables", onFailureDrop, got)
	}
	// Exit 10 must leave the unit failed, or OnFailure= never runs for a
	// failover that went well.
	if got := drop["Service"]["SuccessExitStatus"]; !slices.Equal(got, []string{""}) {
		t.Errorf("%s: SuccessExitStatus = %q, want reset (empty)", onFailureDrop, got)
	}
	if _, err := os.Stat(onFailure); err != nil {
		t.Errorf("%s names %s, which is not here: %v", onFailureDrop, onFailure, err)
	}
	svc := parseUnit(t, onFailure)["Service"]
	for k, want := range map[string]string{
		"Type":      "oneshot",
		"ExecStart": "/etc/fstaidd/on-failure %i",
		"User":      "fstaidd",
	} {
		if got := svc[k]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s [Service] %s = %q, want %q", onFailure, k, got, want)
		}
	}
	for _, u := range []string{"fstaidd.service", template} {
		s := parseUnit(t, u)["Service"]
		if got := s["RestartPreventExitStatus"]; !slices.Equal(got, []string{"10 11 12 78"}) {
			t.Errorf("%s RestartPreventExitStatus = %q: update %s's comment and README's OnFailure= section", u, got, onFailure)
		}
		if got := s["SuccessExitStatus"]; !slices.Equal(got, []string{"10"}) {
			t.Errorf("%s SuccessExitStatus = %q: update %s's comment", u, got, onFailureDrop)
		}
	}
}

// The OnFailure= example runs an operator's command, so it keeps what mail
// and pager clients need (no seccomp: NoNewPrivileges would come with it);
// it must not lose what it has: fail above MEDIUM's middle.
func TestOnFailureExposure(t *testing.T) {
	const max = 6.0
	v, report := exposureOf(t, onFailure, "fstaidd-onfailure@fstaidd@db1.service", nil)
	t.Logf("fstaidd-onfailure@fstaidd@db1.service: exposure %.1f", v)
	if v > max {
		t.Errorf("%s: exposure %.1f, want at most %.1f; report:\n%s", onFailure, v, max, report)
	}
}
