package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fstaid/fstaid"
)

// cmdDemo shows a failover end to end on loopback, without root: a
// throwaway target, a bastion proxy for the secondary check, the real
// daemon (config file, lock, handler script), the target's death, and the
// record it leaves.
func cmdDemo(ctx context.Context, w, _ io.Writer) int {
	// The narration and the daemon's log share the terminal.
	out := &syncWriter{w: w}
	dir, err := os.MkdirTemp("", "fstaidd-demo")
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	defer os.RemoveAll(dir)
	say := func(format string, args ...any) { fmt.Fprintf(out, "\n>>> "+format+"\n", args...) }

	target, targetURL, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the target")
	}))
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	defer target.Close()
	bastion, bastionURL, err := serveLoopback(forwardProxy())
	if err != nil {
		fmt.Fprintln(out, err)
		return 1
	}
	defer bastion.Close()

	handler := filepath.Join(dir, "handler.sh")
	os.WriteFile(handler, []byte(`#!/bin/sh
echo "handler called with: $*  (reason=$FSTAID_REASON, primary HTTP status=${FSTAID_PRIMARY_HTTP_STATUS:-none})"
echo "...this is where the Elastic IP would move to the standby"
`), 0o755)
	config := filepath.Join(dir, "fstaidd.toml")
	os.WriteFile(config, []byte(fmt.Sprintf(`# fstaidd demo: everything on loopback
[global]
port = 8080                  # names the lock file: fstaid.8080.lock
listen = "127.0.0.1:0"
interval = 0.5
maxattempts = 2
attempt_interval = 0.2
lockdir = %q
mode = "release"
target = "demo-target"

[handler]
command = %q
timeout = 10

[primary]
http = "%s/"
timeout = 1

[secondary]                  # the same target, seen through the bastion
http = "%s/"
proxy = "%s"
timeout = 1
`, dir, handler, targetURL, targetURL, bastionURL)), 0o644)

	say("target serving at %s; bastion proxy at %s", targetURL, bastionURL)
	say("starting fstaidd with %s", config)
	var once sync.Once
	d := &daemon{configPath: config, stderr: out}
	d.extraOpts = []fstaid.Option{fstaid.WithObserver(func(n fstaid.Notice) {
		if n.Kind == fstaid.NoticeArmed {
			once.Do(func() {
				go func() {
					time.Sleep(time.Second)
					say("killing the target (its server closes: connections are refused)")
					target.Close()
				}()
			})
		}
	})}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	code := d.run(dctx)
	say("fstaidd exited with status %d (10: failover done, every handler succeeded)", code)

	lock := fstaid.NewFileLock(filepath.Join(dir, "fstaid.8080.lock"))
	if rec, err := lock.Load(ctx); err == nil && rec != nil {
		data, _ := json.MarshalIndent(rec, "", "  ")
		say("the failover record at %s, written before the handler ran:\n%s", lock, data)
		say("fstaidd now refuses to start (exit 12) until a human runs `fstaidd unlock -yes`\n    after pointing the config at the new active server")
	}
	if code != exitFailedOver {
		return 1
	}
	return 0
}

func serveLoopback(h http.Handler) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, "http://" + l.Addr().String(), nil
}

// forwardProxy is a minimal HTTP forward proxy, the demo's bastion.
func forwardProxy() http.Handler {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RequestURI = ""
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
