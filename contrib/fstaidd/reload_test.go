package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// reloadStatusOf reads /status's reload.
func (r *running) reloadStatus(t *testing.T) *reloadStatus {
	t.Helper()
	resp, body, err := request(context.Background(), "GET", r.url+"/status", "ops", "pw")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /status: %v %s", err, body)
	}
	var st statusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st.Reload
}

// hupAndWait sends SIGHUP to this process (the daemon runs in it) and
// waits until /status shows a reload newer than after.
func (r *running) hupAndWait(t *testing.T, after time.Time) *reloadStatus {
	t.Helper()
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	var st *reloadStatus
	waitFor(t, 10*time.Second, func() error {
		if st = r.reloadStatus(t); st == nil || !st.Time.After(after) {
			return errors.New("no reload after SIGHUP")
		}
		return nil
	})
	return st
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		_, err := os.Stat(path)
		return err
	})
}

func TestReloadInProcess(t *testing.T) {
	n := listenNotify(t)
	e := newEnv(t, 0, users)
	orig, _ := os.ReadFile(e.config)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	if st := r.reloadStatus(t); st != nil {
		t.Errorf("/status reload before any: %+v", st)
	}
	write := func(cfg string) {
		if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(e.dir, "new-check-ran")
	newCheck := strings.Replace(string(orig), "sh -c 'test ! -e", "sh -c 'touch "+marker+"; test ! -e", 1)

	// A good reload: the new primary check runs; RELOADING=1 (with
	// MONOTONIC_USEC), then READY=1.
	t0 := time.Now()
	write(newCheck)
	if st := r.hupAndWait(t, t0); !st.OK || st.Error != "" {
		t.Fatalf("reload: %+v", st)
	}
	waitFile(t, marker)
	msgs, _ := n.snapshot()
	i := slices.Index(msgs, "RELOADING=1")
	if i < 0 || i+1 >= len(msgs) || !strings.HasPrefix(msgs[i+1], "MONOTONIC_USEC=") || !slices.Contains(msgs[i+2:], "READY=1") {
		t.Errorf("sd_notify %q: want RELOADING=1, MONOTONIC_USEC=, then READY=1", msgs)
	}

	// An invalid file: nothing changes, /status and STATUS= say why.
	t1 := time.Now()
	write(strings.Replace(newCheck, "interval = 0.05", "intervl = 0.05", 1))
	st := r.hupAndWait(t, t1)
	if st.OK || !strings.Contains(st.Error, `[global] intervl: unknown key (did you mean "interval"?)`) {
		t.Errorf("reload of an invalid file: %+v", st)
	}
	n.waitFor(t, "STATUS=armed: watching db1; reload failed: fstaidd: reload failed")
	os.Remove(marker)
	waitFile(t, marker) // the running check is still the reloaded one

	// Keys that cannot change live refuse the reload, each named.
	t2 := time.Now()
	other := filepath.Join(e.dir, "other")
	os.Mkdir(other, 0o755)
	fixed := strings.Replace(newCheck, "lockdir = \""+e.dir+"\"", "lockdir = \""+other+"\"", 1)
	fixed = strings.Replace(fixed, "port = 8080", "port = 8081", 1)
	write(fixed)
	st = r.hupAndWait(t, t2)
	if st.OK || !strings.Contains(st.Error, "cannot change without a restart (systemctl restart): [global] port, [global] lockdir") {
		t.Errorf("reload changing port and lockdir: %+v", st)
	}

	// A good reload again clears the error from STATUS=.
	t3 := time.Now()
	write(string(orig))
	if st := r.hupAndWait(t, t3); !st.OK {
		t.Errorf("reload back: %+v", st)
	}
	waitFor(t, 5*time.Second, func() error {
		msgs, _ := n.snapshot()
		if last := lastStatus(msgs); last != "STATUS=armed: watching db1" {
			return fmt.Errorf("STATUS= still %q after a good reload", last)
		}
		return nil
	})
	if r.waitState(t, fstaid.StateArmed).State != fstaid.StateArmed {
		t.Error("not armed after the reloads")
	}
}

func lastStatus(msgs []string) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.HasPrefix(msgs[i], "STATUS=") {
			return msgs[i]
		}
	}
	return ""
}

func TestFixedKeys(t *testing.T) {
	base := validBase + users
	parse := func(s string) *Config {
		t.Helper()
		t.Setenv("STATE_DIRECTORY", "")
		cfg, err := ParseConfig(s)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	etcdSection := "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/fstaid/a\"\n"
	for _, c := range []struct {
		name, next string
		want       []string
	}{
		{"checks, handler, timing and notify change live", strings.Replace(strings.Replace(base, "command = \"true\"", "tcp = \"db:5432\"", 1), "port = 8080", "port = 8080\ninterval = 5\nmaxattempts = 2\nmode = \"release\"", 1) + "[notify]\ncommand = \"/bin/true\"\n", nil},
		{"port", strings.Replace(base, "port = 8080", "port = 9090", 1), []string{"[global] port", "[global] listen"}},
		{"listen", strings.Replace(base, "port = 8080", "port = 8080\nlisten = \"127.0.0.2:8080\"", 1), []string{"[global] listen"}},
		{"lockdir", strings.Replace(base, "port = 8080", "port = 8080\nlockdir = \"/srv\"", 1), []string{"[global] lockdir"}},
		{"target and log", strings.Replace(base, "port = 8080", "port = 8080\ntarget = \"db2\"\nlog = \"/var/log/x\"", 1), []string{"[global] log", "[global] target"}},
		{"users", strings.Replace(base, "password = \"pw\"", "password = \"pw2\"", 1), []string{"[[user]]"}},
		{"etcd added", base + etcdSection, []string{"[etcd] (added or removed: the lock backend)"}},
	} {
		got := fixedKeys(parse(base), parse(c.next))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: fixed keys %q, want %q", c.name, got, c.want)
		}
	}
	withEtcd := parse(base + etcdSection)
	for _, c := range []struct {
		name, next string
		want       []string
	}{
		{"endpoints and prefix", base + strings.Replace(strings.Replace(etcdSection, "2379", "2380", 1), "/fstaid/a", "/fstaid/b", 1), []string{"[etcd] endpoints", "[etcd] prefix"}},
		{"etcd removed", base, []string{"[etcd] (added or removed: the lock backend)"}},
		{"interval without quorum", strings.Replace(base, "port = 8080", "port = 8080\ninterval = 3", 1) + etcdSection, nil},
	} {
		got := fixedKeys(withEtcd, parse(c.next))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: fixed keys %q, want %q", c.name, got, c.want)
		}
	}
	quorum := etcdSection + "quorum = 2\n"
	got := fixedKeys(parse(base+quorum), parse(strings.Replace(base, "port = 8080", "port = 8080\ninterval = 3", 1)+quorum))
	if !slices.Equal(got, []string{"[global] interval (with [etcd]: the verdict TTL derives from it)"}) {
		t.Errorf("interval with a quorum: fixed keys %q", got)
	}
}
