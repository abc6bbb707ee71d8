package fstaid_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// These tests run real processes and sockets on real time.

// runCheck runs c once through a Monitor-free path: with a timeout, the
// way the Monitor does.
func runCheck(t *testing.T, c fstaid.Check, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return c.Check(ctx)
}

func exitStatus(err error) int {
	var ce *fstaid.CheckError
	if errors.As(err, &ce) {
		return ce.ExitStatus
	}
	if err == nil {
		return 0
	}
	return -999
}

func TestCommandExitStatus(t *testing.T) {
	tests := []struct {
		cmdline string
		want    int
		msg     string // the whole error text, said once
	}{
		{"true", 0, ""},
		{"false", 1, "exit status 1"},
		{"sh -c 'exit 7'", 7, "exit status 7"},
		{`sh -c "kill -9 \$\$"`, -1, "exit status -1: signal: killed"}, // killed by a signal, not a timeout
		{"/nonexistent/fstaid-check", 127, "exit status 127: starting /nonexistent/fstaid-check: fork/exec /nonexistent/fstaid-check: no such file or directory"},
	}
	for _, tt := range tests {
		err := runCheck(t, fstaid.Command(tt.cmdline), 5*time.Second)
		if got := exitStatus(err); got != tt.want {
			t.Errorf("Command(%q) = %v (exit %d), want exit %d", tt.cmdline, err, got, tt.want)
		}
		if err != nil && err.Error() != tt.msg {
			t.Errorf("Command(%q) says %q, want %q", tt.cmdline, err, tt.msg)
		}
	}
}

func TestCommandTimeoutKillsWholeGroup(t *testing.T) {
	tests := []struct{ name, script string }{
		{"background children", `sleep 30 & echo $! >> "$PIDS"; sleep 30 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait`},
		{"TERM-ignoring shells", `trap "" TERM; sh -c 'trap "" TERM; echo $$ >> "$PIDS"; sleep 30' & echo $$ >> "$PIDS"; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			t.Setenv("PIDS", pids)
			script := filepath.Join(dir, "check.sh")
			os.WriteFile(script, []byte(tt.script+"\n"), 0o644)
			start := time.Now()
			err := runCheck(t, fstaid.Command("sh "+script), 500*time.Millisecond)
			if got := exitStatus(err); got != -1 {
				t.Errorf("exit %d (%v), want -1", got, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("check took %v: the kill did not reach the group", d)
			}
			ps := readPIDs(t, pids)
			if len(ps) < 2 {
				t.Fatalf("pids %v", ps)
			}
			for _, pid := range ps {
				waitGone(t, pid)
			}
		})
	}
}

func TestCommandKillsLeftoversAfterNormalExit(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	t.Setenv("PIDS", pids)
	// The command exits 0 at once, leaving a child that holds its stdout.
	err := runCheck(t, fstaid.Command(`sh -c 'sleep 30 & echo $! > "$PIDS"; exit 0'`), 10*time.Second)
	if err != nil {
		t.Fatalf("check = %v, want pass", err)
	}
	for _, pid := range readPIDs(t, pids) {
		waitGone(t, pid)
	}
}

// countingHandler counts the output records a command logs.
type countingHandler struct {
	mu    sync.Mutex
	lines int
	bytes int
	trunc int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "line":
			h.lines++
			h.bytes += len(a.Value.String())
		case "dropped_bytes":
			h.trunc += int(a.Value.Int64())
		}
		return true
	})
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func TestCommandLargeOutputPassesAndLogsBounded(t *testing.T) {
	tests := []struct{ name, gen string }{
		{"many lines", `yes fstaid | head -c 1048576`},
		{"one long line", `head -c 1048576 /dev/zero | tr "\0" a`},
		{"stderr", `yes err | head -c 1048576 >&2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counter := &countingHandler{}
			p := fstaid.Command("sh -c '" + tt.gen + "'")
			m := newMonitor(t, fstaid.WithPrimary(p, 10*time.Second), fstaid.WithStartupCheck(fstaid.StartupCheckOff),
				fstaid.WithLogger(slog.New(counter)), fstaid.WithInterval(time.Hour),
				fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
			ctx, cancel := context.WithCancel(t.Context())
			done := runAsync(ctx, m)
			waitFor(t, 10*time.Second, "the first round", func() bool { return m.Status().Rounds > 0 })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if v := m.Status().LastRound.Verdict; v != fstaid.VerdictHealthy {
				t.Fatalf("verdict %s: a healthy chatty command must pass (%+v)", v, m.Status().LastRound.Primary)
			}
			counter.mu.Lock()
			defer counter.mu.Unlock()
			if counter.bytes > 80<<10 || counter.lines == 0 {
				t.Errorf("logged %d lines, %d bytes: want some, bounded to ~64 KiB", counter.lines, counter.bytes)
			}
			if counter.trunc == 0 {
				t.Errorf("no truncation reported for 1 MiB of output")
			}
		})
	}
}

func TestCommandLineParsing(t *testing.T) {
	for _, bad := range []string{"", "curl 'unterminated", "curl a | grep b", "true; rm -rf /"} {
		_, err := fstaid.New(fstaid.WithPrimary(fstaid.Command(bad), time.Second),
			fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		if !errors.Is(err, fstaid.ErrInvalidOption) || !strings.Contains(err.Error(), "primary check") {
			t.Errorf("Command(%q): New = %v, want an invalid primary check", bad, err)
		}
		// Err says the same before New: what a configuration loader uses.
		for what, cerr := range map[string]error{"Command": fstaid.Command(bad).Err(), "Script": fstaid.Script(bad).Err()} {
			if cerr == nil || err == nil || !strings.Contains(err.Error(), cerr.Error()) {
				t.Errorf("%s(%q).Err() = %v, want New's reason (%v)", what, bad, cerr, err)
			}
		}
	}
	for _, good := range []string{"true", `sh -c 'exit 0'`} {
		if err := fstaid.Command(good).Err(); err != nil {
			t.Errorf("Command(%q).Err() = %v", good, err)
		}
		if h := fstaid.Script(good); h.Err() != nil || h.Path() != strings.Fields(good)[0] {
			t.Errorf("Script(%q): Err() = %v, Path() = %q", good, h.Err(), h.Path())
		}
	}
	// Quoting works as in the original.
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	err := runCheck(t, fstaid.Command(`sh -c 'printf "%s|" "$@" > `+out+`' sh "a b" 'c "d"' e\ f`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != `a b|c "d"|e f|` {
		t.Errorf("argv = %q", got)
	}
}

func TestHTTPCheck(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/down", http.StatusFound)
		case "/big":
			w.Write(make([]byte, 1<<20))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	tests := []struct {
		path       string
		wantStatus int // 0: pass
	}{
		{"/ok", 0}, {"/down", 503}, {"/redirect", 0}, {"/big", 0}, {"/ok", 0},
	}
	for _, tt := range tests {
		err := runCheck(t, fstaid.HTTP(srv.URL+tt.path), 5*time.Second)
		var ce *fstaid.CheckError
		switch {
		case tt.wantStatus == 0 && err != nil:
			t.Errorf("GET %s = %v, want pass", tt.path, err)
		case tt.wantStatus != 0 && (!errors.As(err, &ce) || ce.HTTPStatus != tt.wantStatus || ce.ExitStatus != 1):
			t.Errorf("GET %s = %v, want HTTP %d, exit 1", tt.path, err, tt.wantStatus)
		}
	}
	// Every check used a fresh connection, even from one HTTPCheck value.
	c := fstaid.HTTP(srv.URL + "/ok")
	before := conns.Load()
	for range 3 {
		if err := runCheck(t, c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if got := conns.Load() - before; got != 3 {
		t.Errorf("3 checks opened %d connections, want 3 (no keep-alive)", got)
	}
	// A closed port fails.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if err := runCheck(t, fstaid.HTTP("http://"+addr+"/"), 5*time.Second); exitStatus(err) != 1 {
		t.Errorf("closed port: %v", err)
	}
}

func TestHTTPCheckProxy(t *testing.T) {
	// The proxy answers for a host that does not resolve: only a request
	// sent through it can pass.
	var seen atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.String())
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)

	c := fstaid.HTTP("http://target.invalid/health")
	c.Proxy = pu
	if err := runCheck(t, c, 5*time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if got := seen.Load(); got != "http://target.invalid/health" {
		t.Errorf("proxy saw %v", got)
	}
}

func TestHTTPCheckIgnoresEnvironmentProxy(t *testing.T) {
	var hits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer proxy.Close()
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	// 0.0.0.0 is not exempt from the environment proxy as loopback names
	// are, and Linux connects it to the local host: no DNS, no traffic
	// off the machine.
	u, _ := url.Parse(target.URL)
	rawURL := "http://0.0.0.0:" + u.Port() + "/"
	req, _ := http.NewRequest("GET", rawURL, nil)
	if pu, _ := http.ProxyFromEnvironment(req); pu == nil {
		t.Fatal("control: the environment proxy is not in effect, the test proves nothing")
	}
	if err := runCheck(t, fstaid.HTTP(rawURL), 5*time.Second); err != nil {
		t.Errorf("direct check = %v", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the environment's HTTP_PROXY was used")
	}
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := l.Addr().String()
	if err := runCheck(t, fstaid.TCP(addr), 5*time.Second); err != nil {
		t.Errorf("open port: %v", err)
	}
	l.Close()
	if err := runCheck(t, fstaid.TCP(addr), 5*time.Second); exitStatus(err) != 1 {
		t.Errorf("closed port: %v, want exit 1", err)
	}
}

// rawServer answers every connection with reply(request) written raw, so
// the HTTP check's own exchange is tested against exact bytes.
func rawServer(t *testing.T, network, addr string, reply func(req *http.Request, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				reply(req, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestHTTPCheckWireEdges(t *testing.T) {
	var gotAuth, gotHost, gotConn atomic.Value
	tests := []struct {
		name   string
		reply  string
		stall  bool
		url    func(addr string) string
		header http.Header
		want   int // 0 pass, else HTTP status; -1: timed out
	}{
		{name: "chunked", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "informational first", reply: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"},
		{name: "HTTP/1.0 close-delimited", reply: "HTTP/1.0 200 OK\r\n\r\nbody until close"},
		{name: "500 chunked", reply: "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: 500},
		{name: "404", reply: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", want: 404},
		{name: "stall mid-headers", reply: "HTTP/1.1 200 OK\r\n", stall: true, want: -1},
		{name: "garbage", reply: "SMTP ready\r\n", want: 1},
		{name: "userinfo and Host", reply: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			url:    func(addr string) string { return "http://u:p%40ss@" + addr + "/x?y=1" },
			header: http.Header{"Host": {"db1.internal"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, "tcp", "127.0.0.1:0", func(req *http.Request, c net.Conn) {
				gotAuth.Store(req.Header.Get("Authorization"))
				gotHost.Store(req.Host)
				gotConn.Store(req.Header.Get("Connection"))
				c.Write([]byte(tt.reply))
				if tt.stall {
					time.Sleep(2 * time.Second)
				}
			})
			u := "http://" + addr + "/"
			if tt.url != nil {
				u = tt.url(addr)
			}
			c := fstaid.HTTP(u)
			c.Header = tt.header
			m := newMonitor(t, fstaid.WithPrimary(c, 300*time.Millisecond), fstaid.WithStartupCheck(fstaid.StartupCheckOff),
				fstaid.WithMaxAttempts(1), fstaid.WithInterval(time.Hour),
				fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
			ctx, cancel := context.WithCancel(t.Context())
			done := runAsync(ctx, m)
			waitFor(t, 10*time.Second, "a round or a failover", func() bool {
				st := m.Status()
				return st.Rounds > 0 || st.State == fstaid.StateFailedOver
			})
			cancel()
			<-done
			var res *fstaid.Result
			if r := m.Status().LastRound; r != nil {
				res = r.Primary
			} else {
				res = &m.Status().Record.Event.Primary
			}
			switch {
			case tt.want == 0 && !res.Passed:
				t.Errorf("want pass, got %+v", res)
			case tt.want == -1 && (!res.TimedOut || res.ExitStatus != -1):
				t.Errorf("want a timeout, got %+v", res)
			case tt.want == 1 && (res.Passed || res.TimedOut || res.ExitStatus != 1):
				t.Errorf("want a failure, got %+v", res)
			case tt.want > 1 && (res.Passed || res.HTTPStatus != tt.want):
				t.Errorf("want HTTP %d, got %+v", tt.want, res)
			}
			if conn, _ := gotConn.Load().(string); conn != "close" {
				t.Errorf("Connection header %q, want close (no keep-alive)", conn)
			}
			if tt.name == "userinfo and Host" {
				if a, _ := gotAuth.Load().(string); a != "Basic dTpwQHNz" {
					t.Errorf("Authorization %q, want basic auth from the URL", a)
				}
				if h, _ := gotHost.Load().(string); h != "db1.internal" {
					t.Errorf("Host %q, want the header's", h)
				}
			}
		})
	}
}

func TestHTTPCheckIPv6Loopback(t *testing.T) {
	addr := rawServer(t, "tcp6", "[::1]:0", func(req *http.Request, c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	})
	if err := runCheck(t, fstaid.HTTP("http://"+addr+"/"), 5*time.Second); err != nil {
		t.Errorf("GET over [::1]: %v", err)
	}
}

// lockedBuffer is a log destination safe for the Monitor's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A password given for an HTTP check, in its URL, its proxy's URL or
// User, reaches the servers and nothing else: not Result.Error, String,
// the log, the record or a handler's environment.
func TestHTTPCheckRedactsCredentials(t *testing.T) {
	const secret = "Secret"
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("monitor:"+secret))
	wantProxyAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bastion:Proxy"+secret))
	var authed atomic.Int32
	// The target answers 500 to a request that carries the credentials,
	// 401 to one that does not: only the right credentials give a 500.
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != wantAuth {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer target.Close()
	var proxyAuthed atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != wantProxyAuth || r.Header.Get("Authorization") != wantAuth {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		proxyAuthed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer proxy.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	hostOf := func(s string) string { return strings.TrimPrefix(s, "http://") }

	tests := []struct {
		name       string
		check      func() *fstaid.HTTPCheck
		wantStatus int // the HTTP status, 0 for a transport error
		served     *atomic.Int32
		wantShown  string // what Result.Error names instead of the password
	}{
		{name: "userinfo, HTTP 500",
			check: func() *fstaid.HTTPCheck {
				return fstaid.HTTP("http://monitor:" + secret + "@" + hostOf(target.URL) + "/health")
			},
			wantStatus: 500, served: &authed, wantShown: "http://monitor:xxxxx@" + hostOf(target.URL) + "/health"},
		{name: "userinfo, connection refused",
			check:     func() *fstaid.HTTPCheck { return fstaid.HTTP("http://monitor:" + secret + "@" + closed + "/health") },
			wantShown: "http://monitor:xxxxx@" + closed + "/health"},
		{name: "userinfo over https, connection refused",
			check:     func() *fstaid.HTTPCheck { return fstaid.HTTP("https://monitor:" + secret + "@" + closed + "/health") },
			wantShown: "https://monitor:xxxxx@" + closed + "/health"},
		{name: "userinfo through an authenticated proxy, HTTP 500",
			check: func() *fstaid.HTTPCheck {
				c := fstaid.HTTP("http://monitor:" + secret + "@target.invalid/health")
				c.Proxy, _ = url.Parse("http://bastion:Proxy" + secret + "@" + hostOf(proxy.URL))
				return c
			},
			wantStatus: 500, served: &proxyAuthed, wantShown: "http://monitor:xxxxx@target.invalid/health"},
		{name: "userinfo through a dead authenticated proxy",
			check: func() *fstaid.HTTPCheck {
				c := fstaid.HTTP("http://monitor:" + secret + "@target.invalid/health")
				c.Proxy, _ = url.Parse("http://bastion:Proxy" + secret + "@" + closed)
				return c
			},
			wantShown: "http://monitor:xxxxx@target.invalid/health"},
		{name: "User, HTTP 500",
			check: func() *fstaid.HTTPCheck {
				c := fstaid.HTTP(target.URL + "/health")
				c.User = url.UserPassword("monitor", secret)
				return c
			},
			wantStatus: 500, served: &authed, wantShown: target.URL + "/health"},
		{name: "User over userinfo",
			check: func() *fstaid.HTTPCheck {
				c := fstaid.HTTP("http://monitor:wrong@" + hostOf(target.URL) + "/health")
				c.User = url.UserPassword("monitor", secret)
				return c
			},
			wantStatus: 500, served: &authed, wantShown: "http://monitor:xxxxx@" + hostOf(target.URL) + "/health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			envFile := filepath.Join(dir, "env")
			var logs lockedBuffer
			c := tt.check()
			before := int32(0)
			if tt.served != nil {
				before = tt.served.Load()
			}
			m, err := fstaid.New(fstaid.WithPrimary(c, 5*time.Second), fstaid.WithStartupCheck(fstaid.StartupCheckOff),
				fstaid.WithMaxAttempts(1), fstaid.WithInterval(time.Hour), fstaid.WithLock(&memLock{}),
				fstaid.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
				fstaid.WithHandler("env", fstaid.Script(`sh -c 'env > "$0"' `+strconv.Quote(envFile)), 5*time.Second))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			m.Run(ctx)
			rec := m.Status().Record
			if rec == nil {
				t.Fatalf("no failover; log:\n%s", logs.String())
			}
			res := rec.Event.Primary
			if res.Passed || res.HTTPStatus != tt.wantStatus {
				t.Errorf("primary = %+v, want a failure with HTTP status %d", res, tt.wantStatus)
			}
			if tt.served != nil && tt.served.Load() == before {
				t.Errorf("the server never saw the credentials")
			}
			if !strings.Contains(res.Error, tt.wantShown) {
				t.Errorf("Result.Error = %q, want it to name %s", res.Error, tt.wantShown)
			}
			env, err := os.ReadFile(envFile)
			if err != nil {
				t.Fatalf("the handler did not run: %v", err)
			}
			if !strings.Contains(string(env), "FSTAID_PRIMARY_ERROR=") {
				t.Errorf("handler environment lacks FSTAID_PRIMARY_ERROR:\n%s", env)
			}
			for what, text := range map[string]string{
				"Result.Error": res.Error, "String()": c.String(), "the log": logs.String(), "the handler's environment": string(env),
			} {
				if strings.Contains(text, secret) {
					t.Errorf("%s shows the password:\n%s", what, text)
				}
			}
		})
	}
}

// A URL that does not parse is reported without its password.
func TestHTTPCheckInvalidURLRedacted(t *testing.T) {
	for _, raw := range []string{
		"http://monitor:Secret@host:port/",
		"http://monitor:Se/cret@host/",
		"ftp://monitor:Secret@host/",
		"http://monitor:Secret@host\x7f/",
	} {
		c := fstaid.HTTP(raw)
		_, err := fstaid.New(fstaid.WithPrimary(c, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
		if err == nil {
			t.Errorf("New with %q: no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "cret") || strings.Contains(c.String(), "cret") {
			t.Errorf("%q: New = %q, String = %q: the password shows", raw, err, c.String())
		}
		if !strings.Contains(err.Error(), "monitor:xxxxx@") {
			t.Errorf("%q: New = %q, want the URL named with its password redacted", raw, err)
		}
	}
}

// User and an Authorization header cannot both be the credentials.
func TestHTTPCheckUserAndAuthorizationHeader(t *testing.T) {
	c := fstaid.HTTP("http://127.0.0.1:1/")
	c.User = url.UserPassword("monitor", "Secret")
	c.Header = http.Header{"Authorization": {"Bearer t"}}
	_, err := fstaid.New(fstaid.WithPrimary(c, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(&memLock{}))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("New = %v, want the conflict reported", err)
	}
}
