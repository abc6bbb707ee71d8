// Tests for the unit files in this directory: systemd-analyze accepts
// them without a single warning, and they say what SPEC.md and the README
// promise (exit statuses, watchdog, stop timeout, socket name).
package systemd_test

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var units = []string{"fstaidd.service", "fstaidd-fail.socket"}

// unitsLoad is left behind by systemd-analyze verify.
const unitsLoad = "/run/systemd/systemd-units-load"

// verify runs `systemd-analyze verify` on copies of the units in a fresh
// directory, with edit applied to the service, and returns its stderr.
// It fails the test if systemd-analyze cannot run at all.
func verify(t *testing.T, edit func(service string) string) (stderr string, err error) {
	t.Helper()
	analyze, lookErr := exec.LookPath("systemd-analyze")
	if lookErr != nil {
		t.Skipf("skipped: systemd-analyze not found: %v", lookErr)
	}
	if _, err := os.Stat(unitsLoad); errors.Is(err, fs.ErrNotExist) {
		t.Cleanup(func() { os.RemoveAll(unitsLoad) })
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if u == "fstaidd.service" {
			// verify insists that ExecStart exists; keep the arguments.
			s = strings.Replace(s, "\nExecStart=/usr/bin/fstaidd ", "\nExecStart=/bin/true ", 1)
			if !strings.Contains(s, "\nExecStart=/bin/true ") {
				t.Fatal("fstaidd.service: no ExecStart=/usr/bin/fstaidd line to rewrite")
			}
			if edit != nil {
				s = edit(s)
			}
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(t.Context(), analyze, append([]string{"verify"}, paths...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("systemd-analyze: %v", err)
	}
	if out.Len() > 0 {
		t.Logf("systemd-analyze verify stdout:\n%s", out.String())
	}
	return errb.String(), err
}

func TestUnitsVerify(t *testing.T) {
	// systemd-analyze exits 0 on warnings (an unknown key, a misspelt
	// value), so any stderr at all is a failure.
	stderr, err := verify(t, nil)
	if err != nil || stderr != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(units, " "), err, stderr)
	}
}

func TestUnitsVerifyCatchesMistakes(t *testing.T) {
	// The check above is only as good as systemd-analyze's eye: make sure
	// that, on this systemd, it complains about the mistakes that matter
	// and that exit 0 hides.
	for _, tc := range []struct{ from, to string }{
		{"\nType=notify\n", "\nType=notfy\n"},
		{"\nWatchdogSec=30s\n", "\nWatchdogSec=30x\n"},
		{"\nKillMode=mixed\n", "\nKilMode=mixed\n"},
		{"\nRestartPreventExitStatus=10 11 12 78\n", "\nRestartPreventExitStatus=10 11 12 seventy-eight\n"},
	} {
		stderr, _ := verify(t, func(s string) string {
			if !strings.Contains(s, tc.from) {
				t.Fatalf("fstaidd.service has no %q", strings.TrimSpace(tc.from))
			}
			return strings.Replace(s, tc.from, tc.to, 1)
		})
		if stderr == "" {
			t.Errorf("systemd-analyze verify says nothing about %q", strings.TrimSpace(tc.to))
		}
	}
}

// unitFile is a parsed unit: section -> key -> values, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: cannot parse %q", name, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func TestUnitsSettings(t *testing.T) {
	for _, tc := range []struct {
		unit string
		want map[string]map[string]string
	}{{
		unit: "fstaidd.service",
		want: map[string]map[string]string{
			"Service": {
				"Type":                     "notify",
				"NotifyAccess":             "main",
				"ExecStart":                "/usr/bin/fstaidd -config /etc/fstaidd/fstaidd.toml",
				"WatchdogSec":              "30s",
				"Restart":                  "on-failure",
				"RestartSec":               "5s",
				"SuccessExitStatus":        "10",
				"RestartPreventExitStatus": "10 11 12 78",
				"KillMode":                 "mixed",
				"TimeoutStopSec":           "15min",
				"StateDirectory":           "fstaidd",
				"Sockets":                  "fstaidd-fail.socket",
			},
			"Install": {"WantedBy": "multi-user.target"},
		},
	}, {
		unit: "fstaidd-fail.socket",
		want: map[string]map[string]string{
			"Socket": {
				"ListenStream":       "127.0.0.1:8080",
				"FileDescriptorName": "fail",
				"Service":            "fstaidd.service",
			},
			"Install": {"WantedBy": "sockets.target"},
		},
	}} {
		u := parseUnit(t, tc.unit)
		for section, kv := range tc.want {
			for k, v := range kv {
				if got := u[section][k]; !slices.Equal(got, []string{v}) {
					t.Errorf("%s [%s] %s = %q, want exactly %q", tc.unit, section, k, got, v)
				}
			}
		}
	}
	// The units name each other; a misspelt name passes verify and only
	// fails on the host.
	svc, sock := parseUnit(t, "fstaidd.service"), parseUnit(t, "fstaidd-fail.socket")
	for _, ref := range slices.Concat(svc["Service"]["Sockets"], svc["Install"]["Also"], sock["Socket"]["Service"]) {
		if _, err := os.Stat(ref); err != nil {
			t.Errorf("a unit refers to %s, which is not here: %v", ref, err)
		}
	}
}
