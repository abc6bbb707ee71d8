package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// The password an HTTP check authenticates with, and its proxy's.
const (
	checkSecret = "Secret"
	proxySecret = "Proxy" + checkSecret
)

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// authTarget is a health endpoint that wants monitor:Secret (or the
// bearer token Secret): without it, 401; with it, 200 while alive and 500 once dead. Only a check that
// sent the credentials can arm, and only one that sent them sees a 500.
type authTarget struct {
	*httptest.Server
	dead   atomic.Bool
	authed atomic.Int32
}

func newAuthTarget(t *testing.T) *authTarget {
	a := &authTarget{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); auth != basicAuth("monitor", checkSecret) && auth != "Bearer "+checkSecret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.authed.Add(1)
		if a.dead.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *authTarget) hostPort() string { return strings.TrimPrefix(a.URL, "http://") }

// syncBuffer collects the daemon's log.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A check's password, given in its URL, through username and
// password_file, or in an Authorization header, reaches the target and
// shows nowhere: not in the log,
// /status, STATUS=, the handler's environment or the failover record.
func TestCheckPasswordNeverShown(t *testing.T) {
	tests := []struct {
		name    string
		section func(a *authTarget, dir string) string
		// shown is what names the URL instead of the password.
		shown func(a *authTarget) string
	}{
		{
			name: "in the URL",
			section: func(a *authTarget, _ string) string {
				return fmt.Sprintf("http = %q\n", "http://monitor:"+checkSecret+"@"+a.hostPort()+"/health")
			},
			shown: func(a *authTarget) string { return "http://monitor:xxxxx@" + a.hostPort() + "/health" },
		},
		{
			name: "username and password_file",
			section: func(a *authTarget, dir string) string {
				pwFile := filepath.Join(dir, "check-password")
				os.WriteFile(pwFile, []byte(checkSecret+"\n"), 0o600)
				return fmt.Sprintf("http = %q\nusername = \"monitor\"\npassword_file = %q\n", a.URL+"/health", pwFile)
			},
			shown: func(a *authTarget) string { return a.URL + "/health" },
		},
		{
			name: "an Authorization header",
			section: func(a *authTarget, _ string) string {
				return fmt.Sprintf("http = %q\nheaders = { Authorization = %q }\n", a.URL+"/health", "Bearer "+checkSecret)
			},
			shown: func(a *authTarget) string { return a.URL + "/health" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", "")
			t.Setenv("JOURNAL_STREAM", "")
			ns := listenNotify(t)
			a := newAuthTarget(t)
			a.dead.Store(true) // dead at start: unarmed, and the reason says why
			dir := t.TempDir()
			handler := filepath.Join(dir, "handler.sh")
			os.WriteFile(handler, []byte("#!/bin/sh\nenv > \"$0.env\"\n"), 0o755)
			config := filepath.Join(dir, "fstaidd.toml")
			os.WriteFile(config, []byte(fmt.Sprintf(`[global]
port = 8080
listen = "127.0.0.1:0"
interval = 0.05
maxattempts = 1
lockdir = %q
target = "db1"

[handler]
command = %q
timeout = 10

[primary]
timeout = 2
%s%s`, dir, handler, tt.section(a, dir), users)), 0o644)

			var logs syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addrs := make(chan []net.Addr, 1)
			d := &daemon{configPath: config, stderr: &logs, serving: func(a []net.Addr) { addrs <- a }}
			done := make(chan int, 1)
			go func() { done <- d.run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			var base string
			select {
			case a := <-addrs:
				base = "http://" + a[0].String()
			case code := <-done:
				done <- code
				t.Fatalf("fstaidd exited %d:\n%s", code, logs.String())
			}

			// Unarmed: /status and STATUS= tell why, naming the URL.
			var statusBody string
			waitFor(t, 10*time.Second, func() error {
				resp, body, err := request(context.Background(), "GET", base+"/status", "ops", "pw")
				var st statusResponse
				if err == nil && resp.StatusCode == 200 && json.Unmarshal(body, &st) == nil &&
					st.State == fstaid.StateUnarmed && st.LastRound != nil && st.LastRound.Primary != nil && st.LastRound.Primary.HTTPStatus == 500 {
					statusBody = string(body)
					return nil
				}
				return fmt.Errorf("never unarmed by the HTTP 500: %s %v\n%s", body, err, logs.String())
			})
			ns.waitFor(t, "STATUS=unarmed")
			a.dead.Store(false)
			ns.waitFor(t, "STATUS=armed")
			a.dead.Store(true)
			select {
			case code := <-done:
				done <- code
				if code != exitFailedOver {
					t.Errorf("exit %d, want %d:\n%s", code, exitFailedOver, logs.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no failover")
			}

			env, err := os.ReadFile(handler + ".env")
			if err != nil {
				t.Fatalf("the handler did not run: %v", err)
			}
			if strings.Contains(string(env), checkSecret) {
				t.Errorf("the handler's environment shows the password")
			}
			record, err := os.ReadFile(filepath.Join(dir, "fstaid.8080.lock"))
			if err != nil {
				t.Fatalf("no failover record: %v", err)
			}
			msgs, _ := ns.snapshot()
			statusLines := strings.Join(msgs, "\n")
			shown := tt.shown(a)
			for what, text := range map[string]string{
				"/status": statusBody, "STATUS=": statusLines, "the log": logs.String(),
				"the handler's environment": string(env), "the failover record": string(record),
			} {
				if what == "the handler's environment" {
					text = fstaidEnv([]byte(text)) // what matters, for the messages
				}
				if strings.Contains(text, checkSecret) {
					t.Errorf("%s shows the password:\n%s", what, text)
				}
				// What a JSON encoder escapes is not at stake here: the
				// URLs hold no such characters.
				if !strings.Contains(text, shown) {
					t.Errorf("%s does not name %s:\n%s", what, shown, text)
				}
			}
			if !strings.Contains(string(env), "FSTAID_PRIMARY_ERROR=exit status 1, HTTP status 500: GET "+shown+": 500") {
				t.Errorf("FSTAID_PRIMARY_ERROR does not name the check:\n%s", fstaidEnv(env))
			}
			if a.authed.Load() == 0 {
				t.Error("the target never saw the credentials")
			}
		})
	}
}

// `fstaidd check` shows the checks' and the proxy's URLs with their
// passwords redacted, and still sends the credentials.
func TestCheckCommandRedactsPasswords(t *testing.T) {
	a := newAuthTarget(t)
	a.dead.Store(true)
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != basicAuth("bastion", proxySecret) ||
			r.Header.Get("Authorization") != basicAuth("monitor", checkSecret) {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		proxied.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer proxy.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(checkSecret), 0o600)
	proxyURL := "http://bastion:" + proxySecret + "@" + strings.TrimPrefix(proxy.URL, "http://")
	e := newEnv(t, 0, fmt.Sprintf("[secondary]\nhttp = %q\nproxy = %q\ntimeout = 2\n[self]\nhttp = %q\nusername = \"monitor\"\npassword_file = %q\ntimeout = 2\n",
		"http://monitor:"+checkSecret+"@target.invalid/health", proxyURL, a.URL+"/health", pwFile))
	_, out := runCmd(t, "check", "-config", e.config)
	if strings.Contains(out, checkSecret) {
		t.Errorf("fstaidd check shows a password:\n%s", out)
	}
	for _, want := range []string{
		"secondary check GET http://monitor:xxxxx@target.invalid/health via http://bastion:xxxxx@" + strings.TrimPrefix(proxy.URL, "http://") + ": FAIL",
		"self check GET " + a.URL + "/health as monitor (password from " + pwFile + "): FAIL",
		"GET http://monitor:xxxxx@target.invalid/health: 500",
		"GET " + a.URL + "/health: 500",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fstaidd check does not say %q:\n%s", want, out)
		}
	}
	if proxied.Load() == 0 || a.authed.Load() == 0 {
		t.Errorf("credentials not sent: the proxy took %d requests with them, the target %d", proxied.Load(), a.authed.Load())
	}
}

// Config errors about check URLs and credentials name the key (and the
// password file), never a password.
func TestCheckCredentialConfigErrors(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(checkSecret+"\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat(checkSecret, 1000)), 0o600)
	missing := filepath.Join(dir, "missing")
	base := "[global]\nport = 8080\n[handler]\ncommand = \"true\"\ntimeout = 1\n[primary]\ntimeout = 1\n"
	tests := []struct {
		name, section string
		want          []string
	}{
		{"URL with a bad port", `http = "http://monitor:` + checkSecret + `@host:port/"`, []string{`[primary] http: must be an http:// or https:// URL: invalid port`}},
		{"URL of another scheme", `http = "ftp://monitor:` + checkSecret + `@host/"`, []string{`[primary] http: must be an http:// or https:// URL, got "ftp://monitor:xxxxx@host/"`}},
		{"proxy without a host", "http = \"http://h/\"\nproxy = \"http://bastion:" + checkSecret + "@\"", []string{`[primary] proxy: must be a URL such as http://bastion:8080, got "http://bastion:xxxxx@"`}},
		{"credentials twice", fmt.Sprintf("http = \"http://monitor:%s@h/\"\nusername = \"monitor\"\npassword_file = %q", checkSecret, pwFile), []string{"[primary] username: the http URL carries credentials too"}},
		{"username alone", "http = \"http://h/\"\nusername = \"monitor\"", []string{"[primary] password_file: is required with username"}},
		{"password_file alone", fmt.Sprintf("http = \"http://h/\"\npassword_file = %q", pwFile), []string{"[primary] username: is required with password_file"}},
		{"username with a colon", fmt.Sprintf("http = \"http://h/\"\nusername = \"a:b\"\npassword_file = %q", pwFile), []string{`[primary] username: "a:b" contains ':'`}},
		{"not an http check", fmt.Sprintf("tcp = \"h:1\"\nusername = \"monitor\"\npassword_file = %q", pwFile), []string{"[primary] username: applies only to an http check", "[primary] password_file: applies only to an http check"}},
		{"relative password_file", "http = \"http://h/\"\nusername = \"monitor\"\npassword_file = \"pw\"", []string{`[primary] password_file: must be an absolute path, or a credential name when $CREDENTIALS_DIRECTORY is set (systemd's LoadCredential=); it is not set, got "pw"`}},
		{"missing password_file", fmt.Sprintf("http = \"http://h/\"\nusername = \"monitor\"\npassword_file = %q", missing), []string{"[primary] password_file: cannot read " + missing + ": no such file or directory"}},
		{"password_file a directory", fmt.Sprintf("http = \"http://h/\"\nusername = \"monitor\"\npassword_file = %q", dir), []string{"[primary] password_file: cannot read " + dir + ": is a directory"}},
		{"empty password_file", fmt.Sprintf("http = \"http://h/\"\nusername = \"monitor\"\npassword_file = %q", empty), []string{"[primary] password_file: " + empty + " is empty"}},
		{"big password_file", fmt.Sprintf("http = \"http://h/\"\nusername = \"monitor\"\npassword_file = %q", big), []string{"[primary] password_file: " + big + " holds more than 4096 bytes"}},
	}
	for _, tt := range tests {
		_, err := ParseConfig(base + tt.section + "\n")
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, want := range tt.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", tt.name, err, want)
			}
		}
		if strings.Contains(err.Error(), checkSecret) {
			t.Errorf("%s: error shows the password: %q", tt.name, err)
		}
	}
	// The password is read once, at load: the check has it, the config
	// shows it nowhere.
	cfg, err := ParseConfig(base + fmt.Sprintf("http = \"http://h/\"\nusername = \"monitor\"\npassword_file = %q\n", pwFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Primary.password != checkSecret {
		t.Errorf("password %q, want the file's content without its newline", cfg.Primary.password)
	}
}

// fstaidEnv is the FSTAID_ part of an env dump.
func fstaidEnv(env []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(env), "\n") {
		if strings.HasPrefix(line, "FSTAID_") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
