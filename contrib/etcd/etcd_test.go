package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Every test runs a real etcd in this process (go.etcd.io/etcd/server/v3/
// embed) on 127.0.0.1 only. TestMain then checks that no goroutine
// outlived the tests: servers, clients, keep-alives and publishers must
// all be closed.

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildMonitor())
	}
	code := m.Run()
	if code == 0 {
		if leaked := waitNoLeaks(10 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoLeaks returns the stacks of goroutines still running after d,
// ignoring the runtime's and the test framework's own.
func waitNoLeaks(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if g == "" || strings.Contains(g, "TestMain") || strings.Contains(g, "runtime.Stack") ||
				strings.Contains(g, "testing.(*M).") || strings.Contains(g, "os/signal.") ||
				strings.Contains(g, "runtime.ensureSigM") || strings.Contains(g, "created by runtime.gc") ||
				strings.Contains(g, "runtime.goexit") && strings.Count(g, "\n") <= 2 {
				continue
			}
			leaked = append(leaked, g)
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

var clusterSeq atomic.Int64

// member is one embedded etcd server.
type member struct {
	e        *embed.Etcd
	endpoint string
	stopped  bool
}

func (m *member) stop() {
	if !m.stopped {
		m.stopped = true
		m.e.Close()
	}
}

// startCluster starts n members on 127.0.0.1 and waits until they serve.
// They are closed when the test ends.
func startCluster(t testing.TB, n int) []*member {
	t.Helper()
	return startClusterTLS(t, n, nil)
}

// startClusterTLS serves clients over https with tlsInfo when it is set.
func startClusterTLS(t testing.TB, n int, tlsInfo *transport.TLSInfo) []*member {
	t.Helper()
	ports := freePorts(t, 2*n)
	token := fmt.Sprintf("fstaid-test-%d-%d", os.Getpid(), clusterSeq.Add(1))
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	cfgs := make([]*embed.Config, n)
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = t.TempDir()
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.TickMs, cfg.ElectionMs = 20, 300
		cfg.UnsafeNoFsync = true
		client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		if tlsInfo != nil {
			client.Scheme = "https"
			cfg.ClientTLSInfo = *tlsInfo
		}
		peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfgs[i] = cfg
	}
	members := make([]*member, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			e, err := embed.StartEtcd(cfgs[i])
			if err == nil {
				members[i] = &member{e: e, endpoint: cfgs[i].AdvertiseClientUrls[0].String()}
			}
			errs <- err
		}()
	}
	var startErr error
	for range n {
		if err := <-errs; err != nil {
			startErr = err
		}
	}
	t.Cleanup(func() {
		for _, m := range members {
			if m != nil {
				m.stop()
			}
		}
	})
	if startErr != nil {
		t.Fatalf("starting etcd: %v", startErr)
	}
	timeout := time.After(20 * time.Second)
	for _, m := range members {
		select {
		case <-m.e.Server.ReadyNotify():
		case <-timeout:
			t.Fatal("etcd did not become ready within 20s")
		}
	}
	return members
}

func startEtcd(t testing.TB) *member { return startCluster(t, 1)[0] }

func endpoints(ms ...*member) []string {
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.endpoint)
	}
	return eps
}

// newClient returns a client of its own (a separate connection, as a
// monitor on another host has), closed when the test ends.
func newClient(t testing.TB, eps ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newStore returns a Store on a client of its own, closed when the test
// ends (Store first, then client).
func newStore(t testing.TB, prefix, id string, eps []string, opts ...Option) *Store {
	t.Helper()
	c := newClient(t, eps...)
	s, err := NewStore(c, prefix, append([]Option{WithMonitorID(id), WithTimeout(3 * time.Second), WithLogger(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls f every 50ms until it returns true or d passes.
func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
