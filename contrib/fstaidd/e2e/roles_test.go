package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// runRole runs this test binary as a helper server, started in a network
// namespace by the harness:
//
//	target ADDR CTRLDIR   the service under watch; CTRLDIR/mode steers it
//	proxy  ADDR READYFILE the bastion's HTTP forward proxy
//	etcd   NAME IP DATADIR CLUSTER READYFILE  one etcd member (etcdnet_test.go)
//
// Each writes CTRLDIR/ready (or READYFILE) once it listens.
func runRole(role string, args []string) int {
	if role == "etcd" {
		return runEtcdMember(args)
	}
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "e2e role %s: want ADDR and a directory or file, got %q\n", role, args)
		return 2
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e role %s: %v\n", role, err)
		return 1
	}
	var h http.Handler
	var connState func(net.Conn, http.ConnState)
	ready := args[1]
	switch role {
	case "target":
		ts := &targetServer{ctrl: args[1]}
		h = ts
		connState = ts.connState
		ready = filepath.Join(args[1], "ready")
	case "proxy":
		h = proxyServer()
	default:
		fmt.Fprintf(os.Stderr, "e2e: unknown role %q\n", role)
		return 2
	}
	if err := os.WriteFile(ready, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "e2e role %s: %v\n", role, err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnState: connState}
	err = srv.Serve(l)
	fmt.Fprintf(os.Stderr, "e2e role %s: %v\n", role, err)
	return 1
}

// targetServer is the watched service. Before each request it reads the
// file CTRLDIR/mode:
//
//	ok (or no file)  200
//	fail             503
//	slow=DURATION    200 after DURATION
//	flap=N           503 for every Nth request, 200 otherwise
//
// It counts requests in CTRLDIR/requests, failures it served in
// CTRLDIR/failures (rewritten on each request) and connections in
// CTRLDIR/conns.
type targetServer struct {
	ctrl                      string
	requests, failures, conns atomic.Int64
}

// connState counts new connections in CTRLDIR/conns: a check that kept
// its connection alive would make fewer connections than requests.
func (s *targetServer) connState(_ net.Conn, st http.ConnState) {
	if st == http.StateNew {
		n := s.conns.Add(1)
		os.WriteFile(filepath.Join(s.ctrl, "conns"), []byte(strconv.FormatInt(n, 10)), 0o644)
	}
}

func (s *targetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	mode := "ok"
	if b, err := os.ReadFile(filepath.Join(s.ctrl, "mode")); err == nil {
		mode = strings.TrimSpace(string(b))
	}
	fail := false
	switch {
	case mode == "fail":
		fail = true
	case strings.HasPrefix(mode, "slow="):
		d, _ := time.ParseDuration(strings.TrimPrefix(mode, "slow="))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	case strings.HasPrefix(mode, "flap="):
		every, _ := strconv.ParseInt(strings.TrimPrefix(mode, "flap="), 10, 64)
		fail = every > 0 && n%every == 0
	}
	if fail {
		s.failures.Add(1)
	}
	os.WriteFile(filepath.Join(s.ctrl, "requests"), []byte(strconv.FormatInt(n, 10)), 0o644)
	os.WriteFile(filepath.Join(s.ctrl, "failures"), []byte(strconv.FormatInt(s.failures.Load(), 10)), 0o644)
	if fail {
		http.Error(w, "target: failing on purpose ("+mode+")", http.StatusServiceUnavailable)
		return
	}
	// "target ok", or "standby ok" from the standby's server.
	fmt.Fprintln(w, filepath.Base(s.ctrl), "ok")
}

// proxyServer is the bastion: absolute-form requests (curl -x) are
// forwarded on a fresh connection (502 if the target cannot be reached);
// a plain GET / answers 200, for the monitor's self check.
func proxyServer() http.Handler {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: 30 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			fmt.Fprintln(w, "bastion ok")
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Connection")
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, "bastion: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}
