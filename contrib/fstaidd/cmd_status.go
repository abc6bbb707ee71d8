package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// cmdStatus shows the daemon's /status, or the lock when it is down.
func cmdStatus(ctx context.Context, path, addr, user, password string, out, errOut io.Writer) int {
	cfg, err := LoadConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password = credentials(cfg, user, password, false)
	resp, body, err := request(ctx, http.MethodGet, daemonURL(cfg, addr)+"/status", user, password)
	if err == nil && resp.StatusCode == http.StatusOK {
		out.Write(body)
	} else {
		if err != nil {
			fmt.Fprintf(out, "daemon: not reachable (%v)\n", err)
		} else {
			fmt.Fprintf(out, "daemon: %s\n", resp.Status)
		}
		fileLockStatus(ctx, cfg, out)
	}
	for _, line := range etcdStatus(ctx, cfg) {
		fmt.Fprintln(out, line)
	}
	if err != nil {
		return 1
	}
	return 0
}

// fileLockStatus shows the file lock's state for a daemon that is down.
// With [etcd] alone the file is never written, so "free" would be a lie:
// the etcd view that follows is the record.
func fileLockStatus(ctx context.Context, cfg *Config, out io.Writer) {
	if !cfg.UsesFileLock() {
		fmt.Fprintln(out, "lock: in etcd (the lock directory is not used): see the etcd record below")
		return
	}
	name := "lock"
	if cfg.Etcd != nil {
		name = "fallback lock (on_unavailable = \"local-lock\")"
	}
	rec, err := cfg.FileLock.Load(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(out, "%s %s: %v\n", name, cfg.LockFile(), err)
	case rec == nil:
		fmt.Fprintf(out, "%s %s: free\n", name, cfg.LockFile())
	default:
		fmt.Fprintf(out, "%s %s: LOCKED, %s\n", name, cfg.LockFile(), describeRecord(rec))
	}
}
