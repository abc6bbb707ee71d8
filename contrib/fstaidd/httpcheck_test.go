package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fstaid/fstaid"
)

const headerToken = "HeaderToken"

// tlsTarget is an HTTPS health endpoint (httptest's certificate: for
// example.com and 127.0.0.1) that answers 200 only to a request with
// Host: db.internal and X-Health-Token, else 403; caFile holds its
// certificate.
type tlsTarget struct {
	*httptest.Server
	caFile string
	dead   atomic.Bool
	seen   atomic.Int32 // requests with the headers
}

func newTLSTarget(t *testing.T) *tlsTarget {
	tt := &tlsTarget{}
	tt.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "db.internal" || r.Header.Get("X-Health-Token") != headerToken {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		tt.seen.Add(1)
		if tt.dead.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	// The checks that do not trust it make it log handshake errors.
	tt.Config.ErrorLog = log.New(io.Discard, "", 0)
	tt.StartTLS()
	t.Cleanup(tt.Close)
	tt.caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(tt.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tt.Certificate().Raw}), 0o644)
	return tt
}

// Issue 15: an http check's headers and TLS (ca_file, server_name,
// insecure_skip_verify) in TOML, against a real TLS server; `fstaidd
// check` names the headers and never shows their values.
func TestHTTPCheckHeadersAndTLS(t *testing.T) {
	target := newTLSTarget(t)
	headers := fmt.Sprintf("headers = { Host = \"db.internal\", \"x-health-token\" = %q }\n", headerToken)
	tests := []struct {
		name, keys string
		pass       bool
		says       string
	}{
		{"ca_file and headers", headers + fmt.Sprintf("ca_file = %q\n", target.caFile), true, "[headers Host, X-Health-Token; CA " + target.caFile + "]"},
		{"the system's roots", headers, false, "certificate signed by unknown authority"},
		{"no headers", fmt.Sprintf("ca_file = %q\n", target.caFile), false, "403 Forbidden"},
		{"server_name in the certificate", headers + fmt.Sprintf("ca_file = %q\nserver_name = \"example.com\"\n", target.caFile), true, "server name example.com"},
		{"server_name not in the certificate", headers + fmt.Sprintf("ca_file = %q\nserver_name = \"wrong.example\"\n", target.caFile), false, "not wrong.example"},
		{"insecure_skip_verify", headers + "insecure_skip_verify = true\n", true, "TLS certificate NOT verified"},
	}
	for _, tt := range tests {
		e := newEnv(t, 0, fmt.Sprintf("[secondary]\nhttp = %q\ntimeout = 2\n%s", target.URL+"/health", tt.keys))
		_, out := runCmd(t, "check", "-config", e.config)
		status := "FAIL"
		if tt.pass {
			status = "PASS"
		}
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "secondary check GET "+target.URL+"/health") {
				line = l
			}
		}
		if !strings.Contains(line, ": "+status+" in ") || !strings.Contains(line, tt.says) {
			t.Errorf("%s: want the secondary check's %s saying %q:\n%s", tt.name, status, tt.says, out)
		}
		if strings.Contains(out, headerToken) {
			t.Errorf("%s: fstaidd check shows a header's value:\n%s", tt.name, out)
		}
	}
	if target.seen.Load() == 0 {
		t.Error("the target never saw the headers")
	}
}

// The daemon's monitor sends them too: it arms on the HTTPS target, and
// fails over once the target answers 503.
func TestHTTPCheckHeadersAndTLSInTheDaemon(t *testing.T) {
	target := newTLSTarget(t)
	e := newEnv(t, 0, users)
	data, _ := os.ReadFile(e.config)
	primary := fmt.Sprintf("[primary]\nhttp = %q\ntimeout = 2\nca_file = %q\n[primary.headers]\nHost = \"db.internal\"\nX-Health-Token = %q\n",
		target.URL+"/health", target.caFile, headerToken)
	cfg := string(data[:strings.Index(string(data), "[primary]")]) + primary + users
	os.WriteFile(e.config, []byte(cfg), 0o644)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	target.dead.Store(true)
	if code := r.wait(t); code != exitFailedOver {
		t.Fatalf("exit %d, want %d", code, exitFailedOver)
	}
	if rec := e.readRecord(); rec.Event == nil || rec.Event.Primary.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("record %+v: want the primary's 503", rec.Event)
	}
	if data, _ := os.ReadFile(e.lockPath()); strings.Contains(string(data), headerToken) {
		t.Errorf("the record shows a header's value:\n%s", data)
	}
}

// Config errors about headers and TLS name the key, never a header's
// value.
func TestHTTPCheckHeadersAndTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	base := "[global]\nport = 8080\n[handler]\ncommand = \"true\"\ntimeout = 1\n[primary]\ntimeout = 1\n"
	https := "http = \"https://h/\"\n"
	tests := []struct{ name, section, want string }{
		{"headers on a tcp check", "tcp = \"h:1\"\nheaders = { Host = \"x\" }", "[primary] headers: applies only to an http check"},
		{"headers not a table", https + "headers = \"Host: x\"", "[primary] headers: must be a table ([primary.headers]), got a string"},
		{"a value not a string", https + "headers = { X-Retries = 3 }", "[primary.headers] X-Retries: must be a string, got an integer"},
		{"a bad name", https + "headers = { \"X Token\" = \"" + headerToken + "\" }", "[primary.headers] X Token: is not a valid header name"},
		{"a line break in a value", https + "headers = { X-Token = \"" + headerToken + "\\r\\nX-Evil: 1\" }", "[primary.headers] X-Token: its value holds a control character"},
		{"a name twice", https + "headers = { host = \"a\", Host = \"b\" }", "[primary.headers] host: is given twice"},
		{"User-Agent", https + "headers = { User-Agent = \"x\" }", "[primary.headers] User-Agent: is set by fstaid's HTTP client"},
		{"Authorization and userinfo", "http = \"https://u:p@h/\"\nheaders = { Authorization = \"Bearer " + headerToken + "\" }", "[primary.headers] Authorization: the check has credentials already"},
		{"ca_file on http://", "http = \"http://h/\"\nca_file = \"/etc/ssl/ca.pem\"", "[primary] ca_file: applies only to an https:// check"},
		{"server_name on http://", "http = \"http://h/\"\nserver_name = \"h\"", "[primary] server_name: applies only to an https:// check"},
		{"insecure_skip_verify on tcp", "tcp = \"h:1\"\ninsecure_skip_verify = true", "[primary] insecure_skip_verify: applies only to an https:// check"},
		{"a relative ca_file", https + "ca_file = \"ca.pem\"", `[primary] ca_file: must be an absolute path, got "ca.pem"`},
		{"a missing ca_file", https + "ca_file = \"" + filepath.Join(dir, "none") + "\"", "[primary] ca_file: cannot read " + filepath.Join(dir, "none") + ": no such file or directory"},
		{"a ca_file without certificates", https + "ca_file = \"" + notPEM + "\"", "[primary] ca_file: " + notPEM + " holds no PEM certificate"},
		{"ca_file and insecure_skip_verify", https + "ca_file = \"" + notPEM + "\"\ninsecure_skip_verify = true", "[primary] insecure_skip_verify: set ca_file or insecure_skip_verify, not both"},
		{"an empty server_name", https + "server_name = \"\"", "[primary] server_name: must not be empty"},
		{"a misspelt key", https + "ca_fle = \"/x\"", `[primary] ca_fle: unknown key (did you mean "ca_file"?)`},
	}
	for _, tt := range tests {
		_, err := ParseConfig(base + tt.section + "\n")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v\nwant %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), headerToken) {
			t.Errorf("%s: the error shows a header's value: %v", tt.name, err)
		}
	}
}
