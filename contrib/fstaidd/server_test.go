package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// lockedBuffer collects a daemon's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is env.start with the daemon's log also kept in log.
func (e *env) startLogged(log io.Writer) *running {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan []net.Addr, 1)
	d := &daemon{configPath: e.config, stderr: io.MultiWriter(testWriter{e.t}, log), serving: func(a []net.Addr) { addrs <- a }}
	r := &running{done: make(chan int, 1), stop: cancel}
	go func() { r.done <- d.run(ctx) }()
	select {
	case a := <-addrs:
		r.url = "http://" + a[0].String()
	case <-time.After(10 * time.Second):
		e.t.Fatal("daemon did not start serving")
	}
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			e.t.Error("daemon did not stop")
		}
	})
	return r
}

// A web page in a browser on the monitor host cannot fail over a monitor
// without users: the browser marks its request cross-site, and the daemon
// refuses it (403, logged) before the handler runs. curl-like and
// same-origin requests still work. Over real HTTP against the daemon.
func TestCrossSiteRequestsRefused(t *testing.T) {
	e := newEnv(t, 0, "")
	var log lockedBuffer
	r := e.startLogged(&log)
	r.waitState(t, fstaid.StateArmed)
	host := strings.TrimPrefix(r.url, "http://")

	do := func(method, path string, header map[string]string, reqHost string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, r.url+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if reqHost != "" {
			req.Host = reqHost
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	refused := []struct {
		name, method, path string
		header             map[string]string
		host               string
	}{
		{"the reproduction", "POST", "/fail", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, ""},
		{"foreign Origin alone", "POST", "/fail", map[string]string{"Origin": "https://evil.example"}, ""},
		{"Origin null", "POST", "/fail", map[string]string{"Origin": "null"}, ""},
		{"same-site", "POST", "/fail", map[string]string{"Sec-Fetch-Site": "same-site"}, ""},
		{"cross-site alone", "POST", "/fail", map[string]string{"Sec-Fetch-Site": "cross-site"}, ""},
		{"DNS rebinding", "POST", "/fail", map[string]string{"Origin": "http://evil.example:" + strings.Split(host, ":")[1], "Sec-Fetch-Site": "same-origin"}, "evil.example:" + strings.Split(host, ":")[1]},
		{"cross-site status", "GET", "/status", map[string]string{"Sec-Fetch-Site": "cross-site"}, ""},
		{"cross-site metrics", "GET", "/metrics", map[string]string{"Origin": "https://evil.example"}, ""},
	}
	for _, tt := range refused {
		if code, body := do(tt.method, tt.path, tt.header, tt.host); code != http.StatusForbidden || !strings.Contains(body, "cross-site request refused") {
			t.Errorf("%s: %s %s with %v (Host %q) = %d %s, want 403", tt.name, tt.method, tt.path, tt.header, tt.host, code, body)
		}
	}
	if got := e.calls(); len(got) != 0 {
		t.Fatalf("a cross-site request failed over: handler calls %q", got)
	}
	if n := strings.Count(log.String(), "cross-site request refused"); n != len(refused) {
		t.Errorf("%d refusals logged, want %d:\n%s", n, len(refused), log.String())
	}
	if !strings.Contains(log.String(), "evil.example") {
		t.Errorf("the log does not name the origin:\n%s", log.String())
	}

	// curl and scripts (no headers), a typed URL (none), same-origin.
	for _, h := range []map[string]string{nil, {"Sec-Fetch-Site": "none"}, {"Origin": r.url, "Sec-Fetch-Site": "same-origin"}} {
		if code, body := do("GET", "/status", h, ""); code != http.StatusOK {
			t.Errorf("GET /status with %v = %d %s, want 200", h, code, body)
		}
	}
	if code, body := do("GET", "/status", map[string]string{"Sec-Fetch-Site": "none"}, "localhost:"+strings.Split(host, ":")[1]); code != http.StatusOK {
		t.Errorf("GET /status from a browser with Host localhost = %d %s, want 200", code, body)
	}
	// A script may send any Host (a name in /etc/hosts for 127.0.0.1).
	if code, body := do("GET", "/status", nil, "monitor.internal"); code != http.StatusOK {
		t.Errorf("GET /status from a script with Host monitor.internal = %d %s, want 200", code, body)
	}
	code, body := do("POST", "/fail?exit=3", map[string]string{"Origin": r.url, "Sec-Fetch-Site": "same-origin", "Content-Type": "text/plain"}, "")
	if code != http.StatusOK {
		t.Fatalf("same-origin POST /fail = %d %s, want 200", code, body)
	}
	if got := e.calls(); len(got) != 1 || got[0] != "3 false 3 false" {
		t.Errorf("handler calls %q, want one", got)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("exit %d, want %d", code, exitFailedOver)
	}
}
