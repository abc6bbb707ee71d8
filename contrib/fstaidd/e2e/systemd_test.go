package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The shipped unit files, relative to this package's directory.
const unitsDir = "../../systemd"

// Paths as the systemd under test sees them: the test's work directory is
// bound onto /run/e2e there, before /tmp is hidden behind a private tmpfs.
const (
	sdWork    = "/run/e2e"
	sdLockDir = "/var/lib/fstaidd" // StateDirectory=fstaidd of the shipped unit
	// sdTarget is the target service, on loopback in systemd's namespace.
	sdTarget = "127.0.0.1:8081"
	// sdUser is the shipped unit's User= and Group=.
	sdUser = "fstaidd"
)

// systemd is a real systemd running as PID 1 of its own pid, mount, uts,
// ipc, net and cgroup namespaces, in a cgroup the test made.
type systemd struct {
	t      *testing.T // the current step
	root   *testing.T // owns the processes and cleanups
	work   string     // the test's view of sdWork
	cgroup string
	boot   *proc // sh → unshare, in the cgroup
	pid    int   // systemd's pid, as the harness sees it
	client *http.Client
	target *proc
	uid    int // of sdUser, inside systemd's namespace
	gid    int
}

// sdUnits is what bootSystemdWith installs in /run/systemd/system: shipped
// files (paths relative to unitsDir, drop-ins included, each copied to the
// same relative path) and test-only files (relative path → content). With
// etcFstaidd, systemd's /etc is an overlay of the machine's (writes land in
// the work directory) with the work directory's etc-fstaidd bound onto
// /etc/fstaidd, so that the shipped paths /etc/fstaidd/... work unchanged.
type sdUnits struct {
	shipped    []string
	files      map[string]string
	etcFstaidd bool
}

// noDefaultDeps is the test-only drop-in every shipped unit gets. They
// keep default dependencies, which make them Require sysinit.target (and
// a service come after basic.target). In this namespace /etc is the
// machine's own, so sysinit.target would start the machine's enabled
// sysinit services: systemd-tmpfiles would clean the machine's /tmp,
// systemd-sysctl would apply its sysctls to the shared kernel.
const noDefaultDeps = "# Test-only: see systemd_test.go — default dependencies would pull in\n" +
	"# sysinit.target, which must never start inside the test namespace.\n" +
	"[Unit]\nDefaultDependencies=no\n"

// plainUnits are the shipped fstaidd.service and fstaidd-fail.socket with
// the drop-ins TestSystemd needs. Sockets= makes the service want the
// socket, so the socket needs noDefaultDeps as much as the service does.
func plainUnits() sdUnits {
	return sdUnits{
		shipped: []string{"fstaidd.service", "fstaidd-fail.socket"},
		files: map[string]string{
			"fstaidd-fail.socket.d/e2e.conf": noDefaultDeps,
			"fstaidd.service.d/e2e.conf": noDefaultDeps + `
[Service]
ExecStart=
ExecStart=` + sdWork + `/bin/fstaidd -config ` + sdWork + `/fstaidd.toml
# Test-only: 30s would make the watchdog scenario take minutes; fstaidd
# pings every second.
WatchdogSec=2s
# Test-only: the handler records its calls for the test to read, as a
# handler that writes outside the state directory must be allowed to
# (ProtectSystem=strict makes everything else read-only). Nothing else of
# the shipped hardening is relaxed.
ReadWritePaths=` + sdWork + `/calls
`,
		},
	}
}

// bootSystemd boots systemd into a minimal target that wants only
// journald, with the shipped fstaidd.service and fstaidd-fail.socket and
// the test's drop-ins. See TESTBED.md, "A real systemd as PID 1".
func bootSystemd(t *testing.T) *systemd {
	t.Helper()
	return bootSystemdWith(t, plainUnits())
}

// bootSystemdWith boots systemd as bootSystemd does, with units.
func bootSystemdWith(t *testing.T, units sdUnits) *systemd {
	t.Helper()
	needHarness(t)
	for _, u := range units.shipped {
		if _, err := os.Stat(filepath.Join(unitsDir, u)); err != nil {
			t.Fatalf("the shipped unit %s is missing: %v", u, err)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		cannotRunHere(t, fmt.Sprintf("no systemd to boot (/lib/systemd/systemd: %v); install the systemd package", err))
	}
	cgroupBase := cgroup2Base()
	if cgroupBase == "" {
		cannotRunHere(t, "no cgroup2 hierarchy at /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup (unified): systemd needs one")
	}
	sd := &systemd{t: t, root: t, work: t.TempDir()}
	// The shipped unit runs fstaidd, its checks and its handler as the
	// user fstaidd: the work directory (bound onto /run/e2e, and 0700 as
	// t.TempDir makes it) must let that user in.
	if err := os.Chmod(sd.work, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "units", "etc", "etc-upper", "etc-overlay-work", "etc-fstaidd"} {
		if err := os.MkdirAll(filepath.Join(sd.work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sd.uid, sd.gid = sd.writeUserDB()
	sd.mkCallsDir()
	copyFile(t, fstaiddBin, filepath.Join(sd.work, "bin/fstaidd"), 0o755)
	for _, u := range units.shipped {
		os.MkdirAll(filepath.Dir(filepath.Join(sd.work, "units", u)), 0o755)
		copyFile(t, filepath.Join(unitsDir, u), filepath.Join(sd.work, "units", u), 0o644)
	}
	for name, content := range units.files {
		os.MkdirAll(filepath.Dir(filepath.Join(sd.work, "units", name)), 0o755)
		writeFile(t, filepath.Join(sd.work, "units", name), content)
	}
	writeFile(t, filepath.Join(sd.work, "units/fstaid-e2e.target"), `[Unit]
Description=fstaid e2e: journald only
# Never sysinit.target, basic.target, multi-user.target: /etc is the
# machine's own here, and they would start the machine's services.
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald.service
`)
	writeFile(t, filepath.Join(sd.work, "console.log"), "")
	sd.writeHandler()

	etcOverlay := ""
	if units.etcFstaidd {
		if b, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(b), "\toverlay\n") {
			cannotRunHere(t, "no overlay file system (/proc/filesystems): the test needs /etc/fstaidd without touching the machine's /etc")
		}
		// Writes to /etc (mkdir /etc/fstaidd) land in etc-upper, never on
		// the machine's /etc; /etc/fstaidd is the work directory's.
		etcOverlay = fmt.Sprintf(`mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/etc-upper,workdir=%[1]s/etc-overlay-work /etc
mkdir -p /etc/fstaidd
mount --bind %[1]s/etc-fstaidd /etc/fstaidd`, sd.work)
	}
	inner := filepath.Join(sd.work, "inner.sh")
	writeFile(t, inner, fmt.Sprintf(`#!/bin/sh
# PID 1 of the new pid namespace: prepare the mounts, then become systemd.
set -e
W=%q
mount --make-rprivate /
%[3]s
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/lock %[2]s
mount --bind "$W" %[2]s
# The shipped unit's user fstaidd (the .deb creates it with sysusers.d):
# copies of the machine's passwd and group with it added, seen only in
# this mount namespace. The machine's /etc is never changed.
mount --bind %[2]s/etc/passwd /etc/passwd
mount --bind %[2]s/etc/group /etc/group
# Without /var/log/journal, journald keeps the journal in /run (a tmpfs here).
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
# StateDirectory=fstaidd would create /var/lib/fstaidd on the machine's disk.
mount -t tmpfs -o mode=0755 tmpfs /var/lib
mount -t sysfs -o ro sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# Private /tmp and /var/tmp: nothing in here may touch the machine's.
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
cp -r %[2]s/units/. /run/systemd/system/
# PID 1 writes to /dev/console: keep it off the machine's console.
mount --bind %[2]s/console.log /dev/console
ip link set lo up
export container=fstaid-e2e
exec /lib/systemd/systemd --system --unit=fstaid-e2e.target --log-target=journal
`, sd.work, sdWork, etcOverlay))
	if err := os.Chmod(inner, 0o755); err != nil {
		t.Fatal(err)
	}

	sd.cgroup = filepath.Join(cgroupBase, fmt.Sprintf("fstaid-e2e-%d", time.Now().UnixNano()))
	if err := os.Mkdir(sd.cgroup, 0o755); err != nil {
		t.Fatalf("making a cgroup for systemd: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, sd.cgroup) }) // runs after poweroff (LIFO)

	// Move the shell into the cgroup, then unshare: systemd's cgroup
	// namespace is rooted at our cgroup, never at the machine's.
	argv := []string{"sh", "-c", `echo $$ > "$1/cgroup.procs" && exec unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup --propagation private --mount-proc "$2"`,
		"sh", sd.cgroup, inner}
	sd.boot = startProcArgv(t, "systemd", filepath.Join(sd.work, "boot.log"), nil, argv...)
	t.Cleanup(sd.poweroff)

	waitFor(t, 15*time.Second, "systemd to start as PID 1 of its namespace", func() bool {
		sd.pid = childOf(sd.boot.cmd.Process.Pid)
		return (sd.pid > 0 && comm(sd.pid) == "systemd") || sd.boot.exited()
	})
	if sd.boot.exited() {
		t.Fatalf("systemd did not boot: %s", tail(sd.boot.logPath))
	}
	waitFor(t, 15*time.Second, "systemd's private bus socket", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", sd.pid))
		return err == nil || sd.boot.exited()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(sd.pid), "-a", "systemctl", "is-system-running", "--wait").CombinedOutput()
	state := strings.TrimSpace(string(out))
	if state != "running" {
		t.Fatalf("systemd is %q (%v), want running; failed units:\n%s\nconsole:\n%s", state, err,
			sd.systemctlOut("--failed", "--no-legend"), tail(filepath.Join(sd.work, "console.log")))
	}
	for _, u := range []string{"sysinit.target", "basic.target", "multi-user.target"} {
		if st := sd.show(u, "ActiveState"); st != "inactive" {
			t.Fatalf("%s is %s inside the test systemd: it must never start", u, st)
		}
	}
	for _, u := range units.shipped {
		if strings.Contains(u, "/") || strings.Contains(u, "@.") {
			continue // a drop-in, a template: the test checks its instances
		}
		if p := sd.show(u, "FragmentPath"); p != "/run/systemd/system/"+u {
			t.Fatalf("%s is loaded from %q, not the shipped copy (a unit in /etc shadows it?)", u, p)
		}
	}
	sd.client = httpClientIn("/proc/" + strconv.Itoa(sd.pid) + "/ns/net")
	return sd
}

// poweroff shuts systemd down and waits for it; it kills systemd (by its
// pid) if it does not stop in time.
func (sd *systemd) poweroff() {
	if sd.boot.exited() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(sd.pid), "-a", "systemctl", "poweroff").CombinedOutput()
	cancel()
	if err != nil {
		sd.root.Logf("systemctl poweroff: %v %s", err, out)
	}
	select {
	case <-sd.boot.done:
		return
	case <-time.After(30 * time.Second):
	}
	sd.root.Errorf("systemd did not power off within 30s: killing it; console:\n%s", tail(filepath.Join(sd.work, "console.log")))
	if sd.pid > 0 && comm(sd.pid) == "systemd" {
		// PID 1 of its pid namespace: everything in it dies with it.
		syscall.Kill(sd.pid, syscall.SIGKILL)
	}
	// unshare --kill-child: killing unshare kills systemd too.
	sd.boot.signal(syscall.SIGKILL)
	select {
	case <-sd.boot.done:
	case <-time.After(10 * time.Second):
		sd.root.Errorf("systemd's unshare (pid %d) still runs after SIGKILL", sd.boot.cmd.Process.Pid)
	}
}

// removeCgroup removes a cgroup directory tree, deepest first, retrying
// while its last processes finish exiting.
func removeCgroup(t *testing.T, root string) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			err := os.Remove(dirs[i])
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("removing cgroup %s: %v", dirs[i], err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// cgroup2Base is where a cgroup2 hierarchy is mounted: /sys/fs/cgroup/unified
// on the hybrid layout of these machines (TESTBED.md), /sys/fs/cgroup on a
// unified-only host; "" if neither.
func cgroup2Base() string {
	for _, base := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if syscall.Statfs(base, &st) == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			return base
		}
	}
	return ""
}

// childOf returns the first child of pid, or 0.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nsenter runs a command in every namespace of the test's systemd.
func (sd *systemd) nsenter(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(sd.pid), "-a"}, args...)...).CombinedOutput()
	return string(out), err
}

func (sd *systemd) systemctlOut(args ...string) string {
	out, _ := sd.nsenter(append([]string{"systemctl"}, args...)...)
	return out
}

// systemctl runs systemctl and fails the test if it fails.
func (sd *systemd) systemctl(args ...string) {
	sd.t.Helper()
	if out, err := sd.nsenter(append([]string{"systemctl"}, args...)...); err != nil {
		sd.t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// show returns one property of a unit.
func (sd *systemd) show(unit, prop string) string {
	out, _ := sd.nsenter("systemctl", "show", "-P", prop, unit)
	return strings.TrimSpace(out)
}

// props returns several properties of fstaidd.service, for messages.
func (sd *systemd) props() string {
	out, _ := sd.nsenter("systemctl", "show", "fstaidd.service", "-p",
		"ActiveState,SubState,Result,ExecMainStatus,NRestarts,MainPID,StatusText,InvocationID")
	return strings.ReplaceAll(strings.TrimSpace(out), "\n", " ")
}

// waitUnit waits until cond holds for fstaidd.service.
func (sd *systemd) waitUnit(timeout time.Duration, what string, cond func() bool) {
	sd.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			sd.t.Fatalf("timed out after %v waiting for %s; fstaidd.service: %s\njournal:\n%s",
				timeout, what, sd.props(), sd.journal("-o", "cat", "-n", "40"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// journal runs journalctl -u fstaidd.service with args.
func (sd *systemd) journal(args ...string) string {
	out, _ := sd.nsenter(append([]string{"journalctl", "--no-pager", "-u", "fstaidd.service"}, args...)...)
	return out
}

// writeConfig writes /run/e2e/fstaidd.toml: the default lock directory
// (the unit's StateDirectory), the target on loopback.
func (sd *systemd) writeConfig(extra string) {
	sd.t.Helper()
	writeFile(sd.t, filepath.Join(sd.work, "fstaidd.toml"), fmt.Sprintf(`[global]
port = 8080
interval = 0.5
maxattempts = 1
target = "db1"
%s
[handler]
command = "%s/handler.sh"
timeout = 10

[primary]
http = "http://%s/"
timeout = 4

[[user]]
userid = %q
password = %q
`, extra, sdWork, sdTarget, authUser, authPass))
}

// writeUserDB writes etc/passwd and etc/group into the work directory:
// the machine's, with the system user and group fstaidd added under a
// uid and gid that neither file uses (unless the machine has them
// already). inner.sh binds them over /etc/passwd and /etc/group in
// systemd's mount namespace. It returns the uid and gid.
func (sd *systemd) writeUserDB() (uid, gid int) {
	t := sd.t
	t.Helper()
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	ids := func(db []byte) (byName map[string]int, used map[int]bool) {
		byName, used = map[string]int{}, map[int]bool{}
		for _, line := range strings.Split(string(db), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 3 {
				continue
			}
			if n, err := strconv.Atoi(f[2]); err == nil {
				byName[f[0]], used[n] = n, true
			}
		}
		return byName, used
	}
	users, usedUIDs := ids(passwd)
	groups, usedGIDs := ids(group)
	uid, haveUser := users[sdUser]
	gid, haveGroup := groups[sdUser]
	if haveUser != haveGroup {
		t.Fatalf("this machine has a %s user or group but not both: /etc/passwd %v, /etc/group %v", sdUser, haveUser, haveGroup)
	}
	if !haveUser {
		uid = 0
		for id := 999; id >= 100; id-- { // systemd's system range
			if !usedUIDs[id] && !usedGIDs[id] {
				uid = id
				break
			}
		}
		if uid == 0 {
			t.Fatal("no free system uid and gid for the user fstaidd between 100 and 999")
		}
		gid = uid
		passwd = fmt.Appendf(passwd, "%s:x:%d:%d:fstaid failover monitor:%s:/usr/sbin/nologin\n", sdUser, uid, uid, sdLockDir)
		group = fmt.Appendf(group, "%s:x:%d:\n", sdUser, uid)
	}
	writeFile(t, filepath.Join(sd.work, "etc/passwd"), string(passwd))
	writeFile(t, filepath.Join(sd.work, "etc/group"), string(group))
	return uid, gid
}

// mkCallsDir makes the handler's calls directory, writable by the user
// fstaidd that runs the handler.
func (sd *systemd) mkCallsDir() {
	sd.t.Helper()
	d := filepath.Join(sd.work, "calls")
	if err := os.Mkdir(d, 0o755); err != nil {
		sd.t.Fatal(err)
	}
	if err := os.Chown(d, sd.uid, sd.gid); err != nil {
		sd.t.Fatal(err)
	}
}

// writeHandler writes the handler (as systemd sees it: /run/e2e).
func (sd *systemd) writeHandler() {
	writeFile(sd.t, filepath.Join(sd.work, "handler.sh"), `#!/bin/sh
d=`+sdWork+`/calls
n=1
while ! mkdir "$d/call.$n" 2>/dev/null; do n=$((n+1)); done
for a in "$@"; do printf '%s\n' "$a"; done > "$d/call.$n/argv"
env | grep '^FSTAID_' | sort > "$d/call.$n/env"
id -u > "$d/call.$n/uid"
if [ -s `+sdWork+`/handler-ip ]; then
	# What a VIP handler does: needs CAP_NET_ADMIN (root-handlers.conf).
	ip addr add "$(cat `+sdWork+`/handler-ip)" dev lo > "$d/call.$n/ip.out" 2>&1
	echo $? > "$d/call.$n/ip.exit"
fi
cat `+sdLockDir+`/fstaid.8080.lock > "$d/call.$n/lock" 2>/dev/null || echo MISSING > "$d/call.$n/lock"
if [ -s `+sdWork+`/handler-sleep ]; then sleep "$(cat `+sdWork+`/handler-sleep)"; fi
echo finished > "$d/call.$n/finished"
`)
	os.Chmod(filepath.Join(sd.work, "handler.sh"), 0o755)
}

// startTarget runs the target service in systemd's network namespace
// (nsenter --net execs in place: the pid is the server's).
func (sd *systemd) startTarget() {
	sd.t.Helper()
	ctrl := filepath.Join(sd.work, "target")
	os.MkdirAll(ctrl, 0o755)
	os.Remove(filepath.Join(ctrl, "ready"))
	sd.target = startProcArgv(sd.root, "target", filepath.Join(sd.work, "target.log"), []string{envRole + "=target"},
		"nsenter", "--net=/proc/"+strconv.Itoa(sd.pid)+"/ns/net", "--", selfBin, sdTarget, ctrl)
	waitReady(sd.t, sd.target, filepath.Join(ctrl, "ready"))
}

func (sd *systemd) setTarget(mode string) {
	writeFile(sd.t, filepath.Join(sd.work, "target", "mode"), mode)
}

// postRaw sends POST /fail through the socket and returns the status and
// body as they are.
func (sd *systemd) postRaw() (int, string) {
	sd.t.Helper()
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8080/fail", nil)
	req.SetBasicAuth(authUser, authPass)
	resp, err := sd.client.Do(req)
	if err != nil {
		sd.t.Fatalf("POST /fail through fstaidd-fail.socket: %v; %s", err, sd.props())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends POST /fail to 127.0.0.1:8080 in systemd's namespace: the
// socket systemd holds, whether or not fstaidd runs.
func (sd *systemd) post() (int, failResponse) {
	sd.t.Helper()
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8080/fail", nil)
	req.SetBasicAuth(authUser, authPass)
	resp, err := sd.client.Do(req)
	if err != nil {
		sd.t.Fatalf("POST /fail through fstaidd-fail.socket: %v; %s", err, sd.props())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var fr failResponse
	if err := json.Unmarshal(body, &fr); err != nil {
		sd.t.Fatalf("POST /fail answered %d with %q: %v", resp.StatusCode, body, err)
	}
	return resp.StatusCode, fr
}

func (sd *systemd) status() (*status, error) {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:8080/status", nil)
	req.SetBasicAuth(authUser, authPass)
	resp, err := sd.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st status
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// readLock reads the record from systemd's mount namespace.
func (sd *systemd) readLock() *record {
	sd.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s/fstaid.8080.lock", sd.pid, sdLockDir))
	if err != nil {
		sd.t.Fatalf("reading the lock record: %v", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		sd.t.Fatalf("lock record: %v: %s", err, b)
	}
	return &r
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestSystemd runs fstaidd under a real systemd with the shipped units.
// Its steps build on each other, so the first failure stops the rest.
func TestSystemd(t *testing.T) {
	sd := bootSystemd(t)
	const svc = "fstaidd.service"
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) { sd.t = t; f(t) }) {
			sd.t = t
			t.FailNow()
		}
		sd.t = t
	}

	step("bad-config-exits-78-not-restarted", func(t *testing.T) {
		sd.writeConfig("maxattempt = 2\n")
		sd.nsenter("systemctl", "start", svc) // fails: exits before READY=1
		sd.waitUnit(10*time.Second, "the unit to fail with status 78", func() bool {
			return sd.show(svc, "ActiveState") == "failed"
		})
		if got := sd.show(svc, "ExecMainStatus"); got != "78" {
			t.Errorf("ExecMainStatus = %s, want 78", got)
		}
		// Failed, not auto-restart: RestartPreventExitStatus has 78.
		if sub, n := sd.show(svc, "SubState"), sd.show(svc, "NRestarts"); sub != "failed" || n != "0" {
			t.Errorf("after 78: SubState %s NRestarts %s, want failed and 0 (no restart)", sub, n)
		}
		if j := sd.journal("-o", "cat"); !strings.Contains(j, "maxattempt") {
			t.Errorf("the journal does not name the key maxattempt:\n%s", j)
		}
		// A request queued on the socket while the config is bad gets 503
		// naming the journal, and does not start a restart loop.
		if s := sd.show("fstaidd-fail.socket", "ActiveState"); s != "active" {
			t.Fatalf("fstaidd-fail.socket is %s: Sockets= should have started it with the service", s)
		}
		code, body := sd.postRaw()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "journalctl -u fstaidd") || !strings.Contains(body, "maxattempt") {
			t.Errorf("POST /fail with a bad config: %d %s, want 503 naming the journal and the key", code, body)
		}
		sd.waitUnit(10*time.Second, "the activated unit to fail with 78 again", func() bool {
			return sd.show(svc, "ActiveState") == "failed" && sd.show(svc, "ExecMainStatus") == "78"
		})
		inv := sd.show(svc, "InvocationID")
		time.Sleep(2 * time.Second)
		if i, n, s := sd.show(svc, "InvocationID"), sd.show(svc, "NRestarts"), sd.show("fstaidd-fail.socket", "ActiveState"); i != inv || n != "0" || s != "active" {
			t.Errorf("2s after the 503: %s, socket %s; want no new invocation and the socket active", sd.props(), s)
		}
		sd.systemctl("reset-failed", svc)
	})

	step("ready-and-armed", func(t *testing.T) {
		sd.startTarget()
		sd.writeConfig("")
		sd.systemctl("start", svc) // returns once READY=1 arrived
		if st := sd.show(svc, "ActiveState"); st != "active" {
			t.Fatalf("after systemctl start: %s, want active", sd.props())
		}
		sd.waitUnit(10*time.Second, "STATUS=armed", func() bool {
			return strings.HasPrefix(sd.show(svc, "StatusText"), "armed: watching db1")
		})
		st, err := sd.status()
		if err != nil || st.State != "armed" {
			t.Errorf("/status through the socket: %+v %v, want armed", st, err)
		}
	})

	step("systemctl-reload", func(t *testing.T) {
		// ExecReload= under the hardened unit: an invalid file leaves the
		// daemon running and says why in `systemctl status`; a good one
		// clears it. The same process throughout.
		pid := sd.show(svc, "MainPID")
		sd.writeConfig("maxattempt = 2\n")
		sd.systemctl("reload", svc)
		sd.waitUnit(10*time.Second, "STATUS= to say the reload failed", func() bool {
			st := sd.show(svc, "StatusText")
			return strings.HasPrefix(st, "armed: watching db1; reload failed: ") && strings.Contains(st, "maxattempt")
		})
		sd.writeConfig("")
		sd.systemctl("reload", svc)
		sd.waitUnit(10*time.Second, "STATUS= without the reload error", func() bool {
			return sd.show(svc, "StatusText") == "armed: watching db1"
		})
		if p, a := sd.show(svc, "MainPID"), sd.show(svc, "ActiveState"); p != pid || a != "active" {
			t.Errorf("after the reloads: MainPID %s %s, want %s, active", p, a, pid)
		}
		if j := sd.journal("-o", "cat"); !strings.Contains(j, "configuration reloaded") || !strings.Contains(j, "reload failed") {
			t.Errorf("the journal does not show both reloads:\n%s", j)
		}
	})

	step("watchdog-keeps-a-slow-healthy-daemon", func(t *testing.T) {
		if w := sd.show(svc, "WatchdogUSec"); w != "2s" {
			t.Fatalf("WatchdogUSec = %s, want the drop-in's 2s", w)
		}
		pid, restarts := sd.show(svc, "MainPID"), sd.show(svc, "NRestarts")
		sd.setTarget("slow=2500ms") // each round takes longer than WatchdogSec
		time.Sleep(7 * time.Second) // 3.5 watchdog periods
		st, err := sd.status()
		if err != nil || st.LastRound == nil || st.LastRound.Verdict != "healthy" || st.LastRound.DurationNS < int64(2*time.Second) {
			t.Errorf("/status after slow rounds: %+v %v, want a healthy last round longer than WatchdogSec (2s)", st.LastRound, err)
		}
		sd.setTarget("ok")
		if p, n, a := sd.show(svc, "MainPID"), sd.show(svc, "NRestarts"), sd.show(svc, "ActiveState"); p != pid || n != restarts || a != "active" {
			t.Errorf("after slow rounds: MainPID %s NRestarts %s %s, want %s, %s, active", p, n, a, pid, restarts)
		}
		j := sd.journal("-o", "cat")
		if strings.Contains(j, "Watchdog timeout") {
			t.Errorf("the watchdog fired on a healthy daemon:\n%s", j)
		}
		if !strings.Contains(j, "watchdog enabled") {
			t.Errorf("fstaidd did not log that it pings the watchdog:\n%s", j)
		}
	})

	step("sigstop-watchdog-kills-and-restarts", func(t *testing.T) {
		pid, restarts := sd.show(svc, "MainPID"), atoi(sd.show(svc, "NRestarts"))
		sd.systemctl("kill", "--kill-who=main", "--signal=SIGSTOP", svc)
		sd.waitUnit(30*time.Second, "a watchdog restart", func() bool {
			return atoi(sd.show(svc, "NRestarts")) == restarts+1 && sd.show(svc, "ActiveState") == "active"
		})
		if p := sd.show(svc, "MainPID"); p == pid {
			t.Errorf("MainPID still %s after the watchdog restart", p)
		}
		out, _ := sd.nsenter("journalctl", "--no-pager", "-o", "cat", "-u", svc)
		if !strings.Contains(out, "Watchdog timeout") {
			t.Errorf("the journal does not show the watchdog timeout:\n%s", out)
		}
		sd.waitUnit(10*time.Second, "STATUS=armed after the restart", func() bool {
			return strings.HasPrefix(sd.show(svc, "StatusText"), "armed:")
		})
	})

	step("unarmed-with-a-dead-target", func(t *testing.T) {
		sd.systemctl("stop", svc)
		sd.target.stop()
		sd.systemctl("start", svc)
		sd.waitUnit(10*time.Second, "STATUS=unarmed", func() bool {
			return strings.HasPrefix(sd.show(svc, "StatusText"), "unarmed:")
		})
		st, err := sd.status()
		if err != nil || st.State != "unarmed" || !strings.Contains(st.Reason, "primary") {
			t.Errorf("/status: %+v %v, want unarmed because of the primary check", st, err)
		}
		if _, err := os.Stat(filepath.Join(sd.work, "calls", "call.1")); err == nil {
			t.Errorf("the handler ran while unarmed")
		}
		sd.systemctl("stop", svc)
		if a := sd.show(svc, "ActiveState"); a != "inactive" {
			t.Errorf("after stop: %s, want inactive", sd.props())
		}
	})

	step("startup-check-exit-13-is-restarted", func(t *testing.T) {
		// startup_check = "exit" (the original's behaviour) with the
		// target dead: 13 is not in RestartPreventExitStatus, so systemd
		// retries after RestartSec.
		sd.writeConfig("startup_check = \"exit\"\n")
		defer sd.writeConfig("")
		sd.nsenter("systemctl", "start", svc)
		sd.waitUnit(20*time.Second, "a restart after exit 13", func() bool {
			return atoi(sd.show(svc, "NRestarts")) >= 1
		})
		if st := sd.show(svc, "ExecMainStatus"); st != "13" && st != "0" {
			t.Errorf("ExecMainStatus = %s, want 13 (or 0 while the restart runs)", st)
		}
		if j := sd.journal("-o", "cat"); !strings.Contains(j, "start-up check failed") {
			t.Errorf("the journal does not say the start-up check failed")
		}
		sd.systemctl("stop", svc)
		sd.systemctl("reset-failed", svc)
		if _, err := os.Stat(filepath.Join(sd.work, "calls", "call.1")); err == nil {
			t.Errorf("the handler ran")
		}
	})

	step("stop-during-a-long-failover-finishes-it", func(t *testing.T) {
		// KillMode=mixed and TimeoutStopSec: `systemctl stop` while the
		// handler runs must not cut the failover in half; and a failover
		// longer than WatchdogSec keeps the pings going.
		watchdogFired := strings.Count(sd.journal("-o", "cat"), "Watchdog timeout")
		writeFile(t, filepath.Join(sd.work, "handler-sleep"), "5") // > 2 × WatchdogSec
		defer os.Remove(filepath.Join(sd.work, "handler-sleep"))
		sd.systemctl("start", svc)
		sd.waitUnit(10*time.Second, "STATUS=unarmed", func() bool {
			return strings.HasPrefix(sd.show(svc, "StatusText"), "unarmed:")
		})
		type answer struct {
			code int
			fr   failResponse
		}
		posted := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("POST", "http://127.0.0.1:8080/fail", nil)
			req.SetBasicAuth(authUser, authPass)
			resp, err := sd.client.Do(req)
			if err != nil {
				posted <- answer{code: -1}
				return
			}
			defer resp.Body.Close()
			var a answer
			a.code = resp.StatusCode
			json.NewDecoder(resp.Body).Decode(&a.fr)
			posted <- a
		}()
		waitFor(t, 10*time.Second, "the handler to start", func() bool {
			_, err := os.Stat(filepath.Join(sd.work, "calls", "call.1", "lock"))
			return err == nil
		})
		sd.systemctl("stop", svc) // returns once fstaidd exited
		if _, err := os.Stat(filepath.Join(sd.work, "calls", "call.1", "finished")); err != nil {
			t.Errorf("systemctl stop cut the handler short")
		}
		select {
		case a := <-posted:
			if a.code != http.StatusOK || a.fr.Record == nil || a.fr.Record.State != "done" {
				t.Errorf("POST /fail during the stop: %d %+v, want 200 with the done record", a.code, a.fr)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("POST /fail got no answer")
		}
		if st, r := sd.show(svc, "ExecMainStatus"), sd.show(svc, "Result"); st != "10" || r != "success" {
			t.Errorf("after the stop: %s, want ExecMainStatus 10, Result success", sd.props())
		}
		if n := strings.Count(sd.journal("-o", "cat"), "Watchdog timeout"); n != watchdogFired {
			t.Errorf("the watchdog fired during a 5s failover (WatchdogSec=2s)")
		}
		if r := sd.readLock(); r.State != "done" || len(r.Handlers) != 1 || r.Handlers[0].DurationNS < int64(5*time.Second) {
			t.Errorf("record = %+v, want done with one 5s handler", r)
		}
		// Re-arm for the next steps, as an operator would.
		out, err := sd.nsenter(sdWork+"/bin/fstaidd", "unlock", "-yes", "-config", sdWork+"/fstaidd.toml")
		if err != nil || !strings.Contains(out, "removed") {
			t.Fatalf("fstaidd unlock -yes inside the namespace: %v\n%s", err, out)
		}
		if err := os.Rename(filepath.Join(sd.work, "calls"), filepath.Join(sd.work, "calls.stop")); err != nil {
			t.Fatal(err)
		}
		sd.mkCallsDir()
	})

	step("socket-activation-fails-over", func(t *testing.T) {
		// The handler also tries what a VIP handler does: the shipped
		// unit must refuse it (no capabilities), without failing the
		// handler, which goes on.
		writeFile(t, filepath.Join(sd.work, "handler-ip"), "192.0.2.1/32")
		defer os.Remove(filepath.Join(sd.work, "handler-ip"))
		sd.systemctl("start", "fstaidd-fail.socket")
		if a := sd.show(svc, "ActiveState"); a != "inactive" {
			t.Fatalf("fstaidd.service must be stopped for this step: %s", sd.props())
		}
		code, fr := sd.post() // the target is dead: a manual failover needs no healthy check
		if code != http.StatusOK || !fr.Accepted || fr.Record == nil || fr.Record.Event == nil || fr.Record.Event.Reason != "manual" {
			t.Fatalf("POST /fail through the socket: %d %+v, want 200 with a manual record", code, fr)
		}
		sd.waitUnit(15*time.Second, "the unit to exit 10 and stay inactive", func() bool {
			return sd.show(svc, "ActiveState") == "inactive" && sd.show(svc, "ExecMainStatus") == "10"
		})
		if r, n := sd.show(svc, "Result"), sd.show(svc, "NRestarts"); r != "success" || n != "0" {
			t.Errorf("after the failover: Result %s NRestarts %s, want success (SuccessExitStatus=10) and 0", r, n)
		}
		argv, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "argv"))
		if got := strings.Fields(string(argv)); strings.Join(got, " ") != "1 false 1 false" {
			t.Errorf("handler argv = %q, want 1 false 1 false", got)
		}
		if _, err := os.Stat(filepath.Join(sd.work, "calls", "call.2")); err == nil {
			t.Errorf("the handler ran twice")
		}
		env, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "env"))
		if !strings.Contains(string(env), "FSTAID_REASON=manual") || !strings.Contains(string(env), "FSTAID_TARGET=db1") {
			t.Errorf("handler env:\n%s\nwant FSTAID_REASON=manual, FSTAID_TARGET=db1", env)
		}
		r := sd.readLock()
		if r.State != "done" || r.Event == nil || r.Event.Reason != "manual" || len(r.Handlers) != 1 {
			t.Errorf("lock record in the state directory = %+v, want done, manual, one handler", r)
		}
		// Least privilege, as shipped: the handler ran as fstaidd, could
		// not touch the network configuration, and the record belongs to
		// fstaidd and is not world-readable (UMask=0027).
		if uid, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "uid")); strings.TrimSpace(string(uid)) != strconv.Itoa(sd.uid) {
			t.Errorf("the handler ran as uid %q, want %d (the user %s)", strings.TrimSpace(string(uid)), sd.uid, sdUser)
		}
		ipExit, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "ip.exit"))
		ipOut, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "ip.out"))
		if e := strings.TrimSpace(string(ipExit)); e == "" || e == "0" {
			t.Errorf("ip addr add in the handler of the shipped unit: exit %q, %q; want refused (no AF_NETLINK, no CAP_NET_ADMIN)", e, ipOut)
		}
		if out, _ := sd.nsenter("ip", "-o", "addr", "show", "dev", "lo"); strings.Contains(out, "192.0.2.1/32") {
			t.Errorf("the shipped unit's handler added 192.0.2.1/32 to lo:\n%s", out)
		}
		for _, p := range []string{sdLockDir, sdLockDir + "/fstaid.8080.lock"} {
			var st syscall.Stat_t
			if err := syscall.Stat(fmt.Sprintf("/proc/%d/root%s", sd.pid, p), &st); err != nil {
				t.Errorf("stat %s: %v", p, err)
			} else if int(st.Uid) != sd.uid || st.Mode&0o007 != 0 {
				t.Errorf("%s: uid %d mode %o, want uid %d (%s) and nothing for others", p, st.Uid, st.Mode&0o777, sd.uid, sdUser)
			}
		}
		time.Sleep(2 * time.Second)
		if a, n := sd.show(svc, "ActiveState"), sd.show(svc, "NRestarts"); a != "inactive" || n != "0" {
			t.Errorf("2s after the failover: %s, want inactive, not restarted", sd.props())
		}
	})

	step("journal-has-structured-fields", func(t *testing.T) {
		out := sd.journal("-o", "json")
		fields := map[string]map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			ev, _ := e["FSTAID_EVENT"].(string)
			if ev == "" {
				continue
			}
			if fields[ev] == nil {
				fields[ev] = map[string]bool{}
			}
			for k := range e {
				if strings.HasPrefix(k, "FSTAID_") {
					fields[ev][k] = true
				}
			}
		}
		for ev, keys := range map[string][]string{
			"failover-started":  {"FSTAID_LOCK", "FSTAID_REASON"},
			"failover-finished": {"FSTAID_LOCK"},
			"handler-finished":  {"FSTAID_HANDLER", "FSTAID_DURATION"},
		} {
			if fields[ev] == nil {
				t.Errorf("no journal entry with FSTAID_EVENT=%s; events seen: %v", ev, fields)
				continue
			}
			for _, k := range keys {
				if !fields[ev][k] {
					t.Errorf("journal entry FSTAID_EVENT=%s lacks %s; has %v", ev, k, fields[ev])
				}
			}
		}
		if j := sd.journal("FSTAID_EVENT=failover-finished", "-o", "cat"); !strings.Contains(j, "failover done") {
			t.Errorf("journalctl -u fstaidd FSTAID_EVENT=failover-finished: %q, want the failover's message", j)
		}
	})

	step("start-again-exits-12-without-a-loop", func(t *testing.T) {
		sd.nsenter("systemctl", "start", svc)
		sd.waitUnit(15*time.Second, "the unit to exit 12", func() bool {
			return sd.show(svc, "ExecMainStatus") == "12" && sd.show(svc, "ActiveState") == "failed"
		})
		inv := sd.show(svc, "InvocationID")
		time.Sleep(3 * time.Second)
		if sub, n, i := sd.show(svc, "SubState"), sd.show(svc, "NRestarts"), sd.show(svc, "InvocationID"); sub != "failed" || n != "0" || i != inv {
			t.Errorf("3s after exit 12: %s, want failed, NRestarts 0, no new invocation", sd.props())
		}
		if j := sd.journal("-o", "cat"); !strings.Contains(j, "refusing to start") {
			t.Errorf("the journal does not say why it refused:\n%s", j)
		}
	})

	step("post-after-failover-409", func(t *testing.T) {
		code, fr := sd.post()
		if code != http.StatusConflict || fr.Record == nil || fr.Record.State != "done" || fr.Record.Event == nil || fr.Record.Event.Reason != "manual" {
			t.Errorf("POST /fail after the failover: %d %+v, want 409 with the done record", code, fr)
		}
		sd.waitUnit(15*time.Second, "the activated unit to exit 12 again", func() bool {
			return sd.show(svc, "ExecMainStatus") == "12" && sd.show(svc, "ActiveState") == "failed"
		})
		inv := sd.show(svc, "InvocationID")
		time.Sleep(3 * time.Second)
		if i, n := sd.show(svc, "InvocationID"), sd.show(svc, "NRestarts"); i != inv || n != "0" {
			t.Errorf("3s later: %s, want no new invocation (the queue was drained)", sd.props())
		}
		if s := sd.show("fstaidd-fail.socket", "ActiveState"); s != "active" {
			t.Errorf("fstaidd-fail.socket is %s, want still active (not failed by a trigger loop)", s)
		}
		if _, err := os.Stat(filepath.Join(sd.work, "calls", "call.2")); err == nil {
			t.Errorf("the handler ran again")
		}
	})

	step("root-handlers-drop-in-moves-an-address", func(t *testing.T) {
		// The shipped drop-in for handlers that need root: with it, the
		// handler's `ip addr add` works (in systemd's own network
		// namespace), and the state directory follows User=root.
		out, err := sd.nsenter(sdWork+"/bin/fstaidd", "unlock", "-yes", "-config", sdWork+"/fstaidd.toml")
		if err != nil {
			t.Fatalf("fstaidd unlock -yes: %v\n%s", err, out)
		}
		sd.systemctl("reset-failed", svc)
		if err := os.Rename(filepath.Join(sd.work, "calls"), filepath.Join(sd.work, "calls.socket")); err != nil {
			t.Fatal(err)
		}
		sd.mkCallsDir()
		// Root without CAP_DAC_OVERRIDE (not in the drop-in's bounding
		// set) writes only where root may by ownership.
		if err := os.Chown(filepath.Join(sd.work, "calls"), 0, 0); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(unitsDir, "fstaidd.service.d/root-handlers.conf"), filepath.Join(sd.work, "root-handlers.conf"), 0o644)
		if out, err := sd.nsenter("cp", sdWork+"/root-handlers.conf", "/run/systemd/system/fstaidd.service.d/"); err != nil {
			t.Fatalf("installing root-handlers.conf: %v\n%s", err, out)
		}
		sd.systemctl("daemon-reload")
		if u := sd.show(svc, "User"); u != "root" {
			t.Fatalf("with root-handlers.conf, User = %q, want root", u)
		}
		writeFile(t, filepath.Join(sd.work, "handler-ip"), "192.0.2.1/32")
		defer os.Remove(filepath.Join(sd.work, "handler-ip"))
		code, fr := sd.post()
		if code != http.StatusOK || fr.Record == nil || fr.Record.State != "done" {
			t.Fatalf("POST /fail with the root drop-in: %d %+v, want 200 with a done record", code, fr)
		}
		sd.waitUnit(15*time.Second, "the unit to exit 10", func() bool {
			return sd.show(svc, "ActiveState") == "inactive" && sd.show(svc, "ExecMainStatus") == "10"
		})
		if uid, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "uid")); strings.TrimSpace(string(uid)) != "0" {
			t.Errorf("with root-handlers.conf the handler ran as uid %q, want 0", strings.TrimSpace(string(uid)))
		}
		ipExit, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "ip.exit"))
		ipOut, _ := os.ReadFile(filepath.Join(sd.work, "calls", "call.1", "ip.out"))
		if e := strings.TrimSpace(string(ipExit)); e != "0" {
			t.Errorf("ip addr add with root-handlers.conf: exit %q, %q; want 0", e, ipOut)
		}
		if out, _ := sd.nsenter("ip", "-o", "addr", "show", "dev", "lo"); !strings.Contains(out, "192.0.2.1/32") {
			t.Errorf("192.0.2.1/32 is not on lo in systemd's namespace after the handler:\n%s", out)
		}
	})
}
