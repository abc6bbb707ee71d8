package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fstaid/fstaid"
	"golang.org/x/crypto/bcrypt"
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

// Issue 15 (roles): a viewer reads /status and /metrics but may not fail
// over (403, the handler never runs); an admin may; a user without a role
// is an admin, so the original's configs keep working; `fstaidd fail`
// picks the first admin.
func TestViewerMayNotFailOver(t *testing.T) {
	e := newEnv(t, 0, `
[[user]]
userid = "prometheus"
password = "scrape"
role = "viewer"

[[user]]
userid = "ops"
password = "pw"
`)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	for _, path := range []string{"/status", "/metrics"} {
		if resp, _, err := request(context.Background(), "GET", r.url+path, "prometheus", "scrape"); err != nil || resp.StatusCode != 200 {
			t.Errorf("viewer GET %s: %v %v, want 200", path, resp.StatusCode, err)
		}
	}
	resp, body, err := request(context.Background(), "POST", r.url+"/fail", "prometheus", "scrape")
	if err != nil || resp.StatusCode != 403 || !strings.Contains(string(body), "only an admin may fail over") {
		t.Fatalf("viewer POST /fail: %v %s %v, want 403", resp.StatusCode, body, err)
	}
	if c := e.calls(); len(c) != 0 {
		t.Fatalf("the handler ran for a viewer: %q", c)
	}
	var out, errb strings.Builder
	if code := cmdFail(context.Background(), e.config, &failFlags{clientFlags: clientFlags{addr: strings.TrimPrefix(r.url, "http://")}, exit: 1}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("fstaidd fail (first admin, ops): exit %d %s %s", code, out.String(), errb.String())
	}
	if c := e.calls(); len(c) != 1 {
		t.Errorf("handler calls %q, want one (the admin's)", c)
	}
}

func TestHTTPAPI(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("hashed-pw"), bcrypt.MinCost)
	e := newEnv(t, 0, users+"[[user]]\nuserid = \"bob\"\npassword = \""+string(hash)+"\"\n")
	r := e.start()
	r.waitState(t, fstaid.StateArmed)

	get := func(path, user, pw string) (*http.Response, []byte) {
		t.Helper()
		resp, body, err := request(context.Background(), "GET", r.url+path, user, pw)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	if resp, body := get("/ping", "", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "pong") {
		t.Errorf("/ping without auth: %s %s", resp.Status, body)
	}
	for _, c := range []struct{ user, pw string }{{"", ""}, {"ops", "wrong"}, {"bob", "pw"}, {"eve", "pw"}} {
		if resp, _ := get("/status", c.user, c.pw); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("/status as %q/%q: %s, want 401", c.user, c.pw, resp.Status)
		}
	}
	if resp, body := get("/status", "bob", "hashed-pw"); resp.StatusCode != 200 || !strings.Contains(string(body), `"armed": true`) {
		t.Errorf("/status with bcrypt user: %s %s", resp.Status, body)
	}
	if resp, body := get("/metrics", "ops", "pw"); resp.StatusCode != 200 || !strings.Contains(string(body), "fstaid_rounds_total") ||
		!strings.Contains(string(body), `fstaid_state{state="armed"} 1`) {
		t.Errorf("/metrics: %s", resp.Status)
	}
	if resp, body := get("/fail", "ops", "pw"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || !strings.Contains(string(body), "use POST /fail") {
		t.Errorf("GET /fail: %s %s, want 405 with a hint", resp.Status, body)
	}
	if len(e.calls()) != 0 {
		t.Fatal("a GET failed over")
	}
	resp, body, err := request(context.Background(), "POST", r.url+"/fail?exit=5", "ops", "pw")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /fail: %v %v %s", err, resp, body)
	}
	var fr failResponse
	json.Unmarshal(body, &fr)
	if !fr.Accepted || fr.Record == nil || fr.Record.Event.RequestedBy == "" || !strings.HasPrefix(fr.Record.Event.RequestedBy, "ops@") {
		t.Errorf("response %s", body)
	}
	if got := e.calls(); len(got) != 1 || got[0] != "5 false 5 false" {
		t.Errorf("handler calls %q, want [5 false 5 false]", got)
	}
	if code := r.wait(t); code != exitFailedOver {
		t.Errorf("exit %d, want 10", code)
	}
}

func TestConcurrentFailRunsHandlerOnce(t *testing.T) {
	t.Setenv("FSTAID_TEST_HANDLER_SLEEP", "0.2")
	e := newEnv(t, 0, "")
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	var wg sync.WaitGroup
	var ok, conflict, other atomic.Int32
	start := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, _, err := request(context.Background(), "POST", r.url+"/fail", "", "")
			switch {
			case err != nil:
				other.Add(1)
			case resp.StatusCode == 200:
				ok.Add(1)
			case resp.StatusCode == 409:
				conflict.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	e.touch("dead") // the loop fails over too
	close(start)
	wg.Wait()
	code := r.wait(t)
	if got := len(e.calls()); got != 1 {
		t.Fatalf("handler ran %d times, want exactly 1", got)
	}
	if code != exitFailedOver {
		t.Errorf("exit %d", code)
	}
	// The loop may win the race; every request is answered either way.
	if ok.Load() > 1 || ok.Load()+conflict.Load()+other.Load() != 100 || other.Load() > 0 && ok.Load()+conflict.Load() == 0 {
		t.Errorf("%d ok, %d conflict, %d other", ok.Load(), conflict.Load(), other.Load())
	}
}

// slowFirstLock's first Acquire takes a while and fails, as a lock
// directory on a struggling disk or an etcd losing its leader does; the
// next would succeed.
type slowFirstLock struct {
	acquires atomic.Int32
	mu       sync.Mutex
	rec      *fstaid.Record
}

func (l *slowFirstLock) Load(context.Context) (*fstaid.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec, nil
}

func (l *slowFirstLock) Acquire(_ context.Context, rec *fstaid.Record) error {
	if l.acquires.Add(1) == 1 {
		time.Sleep(1500 * time.Millisecond)
		return fmt.Errorf("%w: the disk is struggling", fstaid.ErrLockUnavailable)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	return nil
}

func (l *slowFirstLock) Update(_ context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	l.rec = &c
	return nil
}

func (l *slowFirstLock) Done() <-chan struct{} { return nil }

// Found by the model (contrib/model, P2): fstaidd is told to stop while a
// /fail waits behind another attempt that then fails to take the lock.
// The waiting request must not begin a failover after the stop (it could
// outlast TimeoutStopSec or the shutdown and be cut in half): it is
// answered 503, and no handler runs. Under testing/synctest, so that the
// second request is known to be waiting when the stop comes.
func TestStopEndsAQueuedFail(t *testing.T) {
	startSignalLoop()
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, 0, users)
		l := &slowFirstLock{}
		healthy := fstaid.CheckFunc(func(context.Context) error { return nil })
		r, srv := e.startInBubble(fstaid.WithLock(l), fstaid.WithPrimary(healthy, time.Second))
		synctest.Wait()
		if resp, body, err := srv.request(context.Background(), "GET", "/status", "ops", "pw"); err != nil ||
			!strings.Contains(string(body), `"state": "armed"`) {
			t.Fatalf("not armed: %v %v %s", err, resp, body)
		}
		codes := make(chan int, 2)
		outcomes := make(chan string, 2)
		post := func() {
			resp, body, err := srv.request(context.Background(), "POST", "/fail", "ops", "pw")
			if err != nil {
				codes <- -1
				outcomes <- ""
				return
			}
			var fr failResponse
			json.Unmarshal(body, &fr)
			codes <- resp.StatusCode
			outcomes <- fr.Outcome
		}
		go post()
		synctest.Wait() // the first attempt is taking the lock
		if n := l.acquires.Load(); n != 1 {
			t.Fatalf("%d lock attempts, want the first one under way", n)
		}
		go post()
		synctest.Wait() // the second waits for the first
		if len(codes) != 0 || l.acquires.Load() != 1 {
			t.Fatalf("the second /fail did not wait for the first attempt: %d answered, %d lock attempts", len(codes), l.acquires.Load())
		}
		r.stop()
		// The stop answers the waiting one first: compare as a set.
		// fstaidd fail tells the two apart by the answer's outcome.
		got := map[string]int{}
		for range 2 {
			code, outcome := <-codes, <-outcomes
			if code != 503 {
				t.Errorf("POST /fail = %d %q, want 503", code, outcome)
			}
			got[outcome] = failExit(code, outcome)
		}
		if want := map[string]int{outcomeLockUnavailable: exitLockUnavailable, outcomeStopping: exitUnreachable}; !maps.Equal(got, want) {
			t.Errorf("outcomes and fstaidd fail's exits %v, want %v (lock unavailable, then stopping)", got, want)
		}
		r.wait(t)
		if n := l.acquires.Load(); n != 1 {
			t.Errorf("the lock was taken %d times, want once: the queued /fail began a failover after the stop", n)
		}
		if c := e.calls(); len(c) != 0 {
			t.Errorf("handler calls %q after the stop, want none", c)
		}
	})
}
