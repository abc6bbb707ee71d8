package main

import (
	"crypto/tls"
	"crypto/x509"
	"maps"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fstaid/fstaid/contrib/internal/config"
)

// An http check's request, beyond its URL: headers and TLS, mapped to
// fstaid.HTTPCheck's Header and TLSClientConfig.
//
//	[primary]
//	http = "https://10.0.0.5/health"
//	headers = { Host = "db.internal", "X-Health-Token" = "..." }
//	ca_file = "/etc/fstaidd/db-ca.pem"
//	server_name = "db.internal"
//
// Header values may hold secrets (a token, Authorization): they are never
// shown, in config errors, `fstaidd check` or anywhere else; only the
// names are.

// httpOptions are the keys of an http check's request.
type httpOptions struct {
	// Header holds headers = { Name = "value" }, names canonical.
	Header http.Header
	// CAFile, ServerName and InsecureSkipVerify configure an https
	// check's TLS; tls is built from them when the config loads.
	CAFile             string
	ServerName         string
	InsecureSkipVerify bool
	tls                *tls.Config
}

// clientHeaders are set by the HTTP client (and User-Agent by fstaid):
// a value given here would be overwritten or break the request.
var clientHeaders = []string{"User-Agent", "Content-Length", "Transfer-Encoding", "Connection"}

// decode reads the headers and TLS keys of a check section whose http
// URL is rawURL ("" for another kind of check); hasCredentials: the
// check sends basic auth already.
func (o *httpOptions) decode(t *config.Table, rawURL string, hasCredentials bool) {
	https := strings.HasPrefix(strings.ToLower(rawURL), "https://")
	if h := t.Table("headers", false); h != nil {
		if rawURL == "" {
			t.Errorf("headers", "applies only to an http check")
		}
		o.Header = http.Header{}
		for _, name := range h.Keys() {
			v, ok := h.String(name)
			if !ok {
				continue
			}
			canonical := textproto.CanonicalMIMEHeaderKey(name)
			switch {
			case !validHeaderName(name):
				h.Errorf(name, "is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)")
			case o.Header[canonical] != nil:
				h.Errorf(name, "is given twice (header names do not depend on case)")
			case slices.Contains(clientHeaders, canonical):
				h.Errorf(name, "is set by fstaid's HTTP client, not here")
			case canonical == "Authorization" && hasCredentials:
				h.Errorf(name, "the check has credentials already (in its URL, or username and password_file): give them in one place")
			case !validHeaderValue(v):
				// Never quote the value: it may be a secret.
				h.Errorf(name, "its value holds a control character (a line break, say)")
			default:
				o.Header[canonical] = []string{v}
			}
		}
		h.Done()
	}
	o.CAFile, _ = t.String("ca_file")
	o.ServerName, _ = t.String("server_name")
	o.InsecureSkipVerify, _ = t.Bool("insecure_skip_verify")
	if !https {
		for _, key := range []string{"ca_file", "server_name", "insecure_skip_verify"} {
			if t.Has(key) {
				t.Errorf(key, "applies only to an https:// check")
			}
		}
		return
	}
	if t.Has("server_name") && o.ServerName == "" {
		t.Errorf("server_name", "must not be empty")
	}
	if o.CAFile == "" && o.ServerName == "" && !o.InsecureSkipVerify {
		return // the system's roots, the URL's host
	}
	o.tls = &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	switch {
	case o.CAFile != "" && o.InsecureSkipVerify:
		t.Errorf("insecure_skip_verify", "set ca_file or insecure_skip_verify, not both")
	case o.CAFile != "":
		o.tls.RootCAs = readCAFile(t, o.CAFile)
	}
}

// readCAFile reads the PEM certificates ca_file names.
func readCAFile(t *config.Table, path string) *x509.CertPool {
	if !filepath.IsAbs(path) {
		t.Errorf("ca_file", "must be an absolute path, got %q", path)
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("ca_file", "cannot read %s: %v", path, unwrapPathError(err))
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Errorf("ca_file", "%s holds no PEM certificate", path)
		return nil
	}
	return pool
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control character but a
// tab.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// describe is what `fstaidd check` shows of the options: header names,
// never values, and the TLS settings.
func (o *httpOptions) describe() string {
	var parts []string
	if len(o.Header) > 0 {
		parts = append(parts, "headers "+strings.Join(slices.Sorted(maps.Keys(o.Header)), ", "))
	}
	if o.CAFile != "" {
		parts = append(parts, "CA "+o.CAFile)
	}
	if o.ServerName != "" {
		parts = append(parts, "server name "+o.ServerName)
	}
	if o.InsecureSkipVerify {
		parts = append(parts, "TLS certificate NOT verified (insecure_skip_verify)")
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, "; ") + "]"
}
