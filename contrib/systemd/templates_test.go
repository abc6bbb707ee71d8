// Tests for the template units, one monitor per target: fstaidd@.service
// and fstaidd-fail@.socket.
package systemd_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

const (
	template       = "fstaidd@.service"
	socketTemplate = "fstaidd-fail@.socket"
)

// listenDropIn is what an operator writes for instance db1's socket
// (systemctl edit fstaidd-fail@db1.socket), as the socket's comment says.
const listenDropIn = "[Socket]\nListenStream=127.0.0.1:8081\n"

// templateFiles are the shipped templates, ready for verify, with the
// operator's drop-in for db1's socket and edit applied to the service
// template.
func templateFiles(t *testing.T, edit func(string) string) map[string]string {
	t.Helper()
	files := map[string]string{
		template:                                forVerify(t, template),
		socketTemplate:                          forVerify(t, socketTemplate),
		"fstaidd-fail@db1.socket.d/listen.conf": listenDropIn,
	}
	if edit != nil {
		files[template] = edit(files[template])
	}
	return files
}

func TestTemplatesVerify(t *testing.T) {
	stderr, err := verifyFiles(t, templateFiles(t, nil), "fstaidd@db1.service", "fstaidd-fail@db1.socket")
	if err != nil || stderr != "" {
		t.Errorf("systemd-analyze verify fstaidd@db1.service fstaidd-fail@db1.socket: %v\n%s", err, stderr)
	}
	// The instance's unit was read from the template: a mistake in it
	// shows.
	stderr, _ = verifyFiles(t, templateFiles(t, func(s string) string {
		return strings.Replace(s, "\nType=notify\n", "\nType=notfy\n", 1)
	}), "fstaidd@db1.service")
	if !strings.Contains(stderr, "notfy") {
		t.Errorf("verify of fstaidd@db1.service says nothing about a mistake in %s: %q", template, stderr)
	}
	// As shipped the socket has no address: systemd refuses it, as its
	// comment says, until the instance's drop-in gives the port.
	files := templateFiles(t, nil)
	delete(files, "fstaidd-fail@db1.socket.d/listen.conf")
	stderr, err = verifyFiles(t, files, "fstaidd-fail@db1.socket")
	if err == nil || !strings.Contains(stderr, "no Listen setting") {
		t.Errorf("verify of fstaidd-fail@db1.socket without its drop-in: %v %q, want refused for want of a Listen setting", err, stderr)
	}
	// ... and the service does not depend on it: it loads, and serves the
	// config's port itself.
	stderr, err = verifyFiles(t, files, "fstaidd@db1.service")
	if err != nil || stderr != "" {
		t.Errorf("verify of fstaidd@db1.service without a socket drop-in: %v\n%s", err, stderr)
	}
}

// The template is fstaidd.service but for the instance's config path,
// state directory and socket: the same hardening, watchdog, restart and
// stop settings, so that fixing one and forgetting the other fails here.
func TestTemplateMatchesService(t *testing.T) {
	svc, tpl := parseUnit(t, "fstaidd.service"), parseUnit(t, template)
	differ := map[string]map[string][]string{
		"Unit": {"Description": {"fstaid failover monitor %i"}},
		"Service": {
			"ExecStart":      {"/usr/bin/fstaidd -config /etc/fstaidd/%i.toml"},
			"StateDirectory": {"fstaidd/%i"},
			"Sockets":        nil, // optional, see fstaidd-fail@.socket
		},
		"Install": {"Also": nil},
	}
	for _, section := range slices.Sorted(maps.Keys(svc)) {
		keys := slices.Sorted(maps.Keys(svc[section]))
		for k := range tpl[section] {
			if _, ok := svc[section][k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			want, ok := differ[section][k]
			if !ok {
				want = svc[section][k]
			}
			if got := tpl[section][k]; !slices.Equal(got, want) {
				t.Errorf("%s [%s] %s = %q, want %q (fstaidd.service: %q)", template, section, k, got, want, svc[section][k])
			}
		}
	}
	if len(tpl) != len(svc) {
		t.Errorf("%s has sections %v, fstaidd.service %v", template, slices.Sorted(maps.Keys(tpl)), slices.Sorted(maps.Keys(svc)))
	}
}

func TestSocketTemplateSettings(t *testing.T) {
	sock := parseUnit(t, socketTemplate)
	for section, kv := range map[string]map[string][]string{
		// fstaidd takes the socket by this name (pickFailListeners), as
		// from fstaidd-fail.socket.
		"Socket":  {"FileDescriptorName": {"fail"}, "Service": {"fstaidd@%i.service"}, "ListenStream": nil},
		"Install": {"WantedBy": {"sockets.target"}},
	} {
		for k, want := range kv {
			if got := sock[section][k]; !slices.Equal(got, want) {
				t.Errorf("%s [%s] %s = %q, want %q", socketTemplate, section, k, got, want)
			}
		}
	}
	if plain := parseUnit(t, "fstaidd-fail.socket")["Socket"]["FileDescriptorName"]; !slices.Equal(plain, sock["Socket"]["FileDescriptorName"]) {
		t.Errorf("FileDescriptorName: %s %q, fstaidd-fail.socket %q: fstaidd looks for one name", socketTemplate, sock["Socket"]["FileDescriptorName"], plain)
	}
}

// TestTemplateSecurityExposure measures an instance of the template as an
// operator would (systemd-analyze security fstaidd@db1), as shipped and
// with the root-handlers drop-in for all instances (fstaidd@.service.d)
// or for one (fstaidd@db1.service.d), and fails above maxExposure.
func TestTemplateSecurityExposure(t *testing.T) {
	const instance = "fstaidd@db1.service"
	shipped, report := exposureOf(t, template, instance, nil)
	t.Logf("%s (%s) as shipped: exposure %.1f", instance, template, shipped)
	if shipped > maxExposure {
		t.Errorf("%s as shipped: overall exposure %.1f, want at most %.1f; report:\n%s", instance, shipped, maxExposure, report)
	}
	plain, _ := exposure(t)
	if shipped != plain {
		t.Errorf("%s: exposure %.1f, fstaidd.service %.1f: the template must be hardened as the service is", instance, shipped, plain)
	}
	for _, dir := range []string{template, instance} {
		withRoot, report := exposureOf(t, template, instance, map[string][]string{dir: {rootDropIn}})
		t.Logf("%s with %s in %s.d: exposure %.1f", instance, rootDropIn, dir, withRoot)
		if withRoot > maxExposure {
			t.Errorf("%s with %s in %s.d: overall exposure %.1f, want at most %.1f; report:\n%s", instance, rootDropIn, dir, withRoot, maxExposure, report)
		}
		if withRoot <= shipped || !strings.Contains(report, "Service runs as root user") {
			t.Errorf("%s with %s in %s.d: exposure %.1f, not above %.1f, or no User=root: was the drop-in read?\n%s", instance, rootDropIn, dir, withRoot, shipped, report)
		}
	}
}
