package aws

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func newIMDS(t *testing.T, id string) *ec2fake.IMDS {
	t.Helper()
	m := ec2fake.NewIMDS(id)
	t.Cleanup(m.Close)
	return m
}

func TestIMDSFakeWantsAToken(t *testing.T) {
	m := newIMDS(t, "i-monitor")
	resp, err := http.Get(m.URL + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %s, want 401", resp.Status)
	}
}

func TestIMDSCheck(t *testing.T) {
	m := newIMDS(t, "i-monitor")
	// AWS_EC2_METADATA_DISABLED=true is set for the whole test binary: a
	// configured check must not be silenced by it.
	c, err := NewIMDSCheck(IMDSConfig{Endpoint: m.URL, InstanceID: "i-monitor"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if puts, gets := m.Counts(); puts != 1 || gets != 1 {
		t.Errorf("token PUTs %d, GETs %d; want 1 and 1", puts, gets)
	}
	// Tokens expire (or IMDS restarts): a 401 makes the client fetch a
	// new one.
	m.ExpireTokens()
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check after the token expired: %v", err)
	}
	if puts, _ := m.Counts(); puts != 2 {
		t.Errorf("token PUTs %d, want 2", puts)
	}
}

func TestIMDSCheckFailures(t *testing.T) {
	m := newIMDS(t, "i-other")
	c, err := NewIMDSCheck(IMDSConfig{Endpoint: m.URL, InstanceID: "i-monitor"})
	if err != nil {
		t.Fatal(err)
	}
	var ce *fstaid.CheckError
	err = c.Check(ctxTimeout(t, 5*time.Second))
	if !errors.As(err, &ce) || ce.ExitStatus != 1 || !strings.Contains(err.Error(), "instance-id is i-other, want i-monitor") {
		t.Errorf("wrong instance: %v", err)
	}

	m.SetDown(true)
	c, _ = NewIMDSCheck(IMDSConfig{Endpoint: m.URL})
	if err := c.Check(ctxTimeout(t, 5*time.Second)); !errors.As(err, &ce) || ce.ExitStatus != 1 {
		t.Errorf("IMDS down: %v", err)
	}

	// A hung IMDS: the check returns at its context's deadline.
	m.SetDown(false)
	m.SetLatency(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Check(ctx)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("hung IMDS: returned after %v", elapsed)
	}
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung IMDS: %v", err)
	}
}

func TestIMDSConfigValidate(t *testing.T) {
	if _, err := NewIMDSCheck(IMDSConfig{Endpoint: "169.254.169.254", InstanceID: "x"}); err == nil ||
		!strings.Contains(err.Error(), "endpoint:") || !strings.Contains(err.Error(), "instance_id:") {
		t.Errorf("NewIMDSCheck: %v", err)
	}
}

// imdsProxyInner marks the re-run of TestIMDSCheckIgnoresHTTPProxy inside
// its own network namespace.
const imdsProxyInner = "FSTAID_TEST_IMDS_PROXY_INNER"

// TestIMDSCheckIgnoresHTTPProxy: with HTTP_PROXY set to a proxy that
// answers another instance's identity, the check must go straight to IMDS.
// The test re-runs itself under `unshare --net` (a network namespace with
// only its own lo) and puts 169.254.169.254 on that lo, because net/http
// never proxies loopback addresses and reads HTTP_PROXY once per process.
func TestIMDSCheckIgnoresHTTPProxy(t *testing.T) {
	if os.Getenv(imdsProxyInner) == "1" {
		imdsProxyInside(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root for a network namespace of its own")
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not found: %v", bin, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net",
		os.Args[0], "-test.run=^TestIMDSCheckIgnoresHTTPProxy$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), imdsProxyInner+"=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestIMDSCheckIgnoresHTTPProxy") {
		t.Fatalf("inside the network namespace: %v\n%s", err, out)
	}
	t.Logf("inside the network namespace:\n%s", out)
}

func imdsProxyInside(t *testing.T) {
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", "169.254.169.254/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	l, err := net.Listen("tcp", "169.254.169.254:0")
	if err != nil {
		t.Fatal(err)
	}
	md := ec2fake.NewIMDSOn(l, "i-monitor")
	defer md.Close()
	var mu sync.Mutex
	var proxied []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.Method+" "+r.URL.String())
		mu.Unlock()
		if r.Method == http.MethodPut {
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
			w.Write([]byte("proxy-token"))
			return
		}
		w.Write([]byte("i-impostor"))
	}))
	defer proxy.Close()
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	c, err := NewIMDSCheck(IMDSConfig{Endpoint: md.URL, InstanceID: "i-monitor"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Errorf("Check with HTTP_PROXY set: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(proxied) > 0 {
		t.Errorf("the IMDS check went through HTTP_PROXY: %q", proxied)
	}
	if puts, gets := md.Counts(); puts != 1 || gets != 1 {
		t.Errorf("IMDS answered %d token PUTs and %d GETs, want 1 and 1", puts, gets)
	}
}
