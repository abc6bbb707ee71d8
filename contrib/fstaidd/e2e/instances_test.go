package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// instance is one monitor of TestSystemdInstances: fstaidd@NAME.service,
// its socket on port, its target on targetAddr.
type instance struct {
	name       string
	port       int
	targetAddr string
	target     *proc
}

func (in instance) unit() string   { return "fstaidd@" + in.name + ".service" }
func (in instance) socket() string { return "fstaidd-fail@" + in.name + ".socket" }

// lockFile is the record's path as systemd's namespace sees it: the
// instance's state directory (StateDirectory=fstaidd/%i).
func (in instance) lockFile() string {
	return fmt.Sprintf("/var/lib/fstaidd/%s/fstaid.%d.lock", in.name, in.port)
}

// instanceUnits are the shipped templates, the OnFailure= example with its
// drop-in installed for every instance, and the test's drop-ins.
func instanceUnits(t *testing.T, ins ...instance) sdUnits {
	t.Helper()
	tpl, err := os.ReadFile(filepath.Join(unitsDir, "fstaidd@.service"))
	if err != nil {
		t.Fatal(err)
	}
	// The shipped command line, with the binary under test.
	var execStart string
	for _, l := range strings.Split(string(tpl), "\n") {
		if strings.HasPrefix(l, "ExecStart=/usr/bin/fstaidd ") {
			execStart = strings.Replace(l, "/usr/bin/fstaidd", sdWork+"/bin/fstaidd", 1)
		}
	}
	if execStart != "ExecStart="+sdWork+"/bin/fstaidd -config /etc/fstaidd/%i.toml" {
		t.Fatalf("fstaidd@.service: ExecStart %q, want the binary and -config /etc/fstaidd/%%i.toml", execStart)
	}
	onFailureConf, err := os.ReadFile(filepath.Join(unitsDir, "fstaidd.service.d/onfailure.conf"))
	if err != nil {
		t.Fatal(err)
	}
	u := sdUnits{
		shipped: []string{"fstaidd@.service", "fstaidd-fail@.socket", "fstaidd-onfailure@.service"},
		files: map[string]string{
			// As README says: the drop-in for every instance.
			"fstaidd@.service.d/onfailure.conf": string(onFailureConf),
			"fstaidd-fail@.socket.d/e2e.conf":   noDefaultDeps,
			"fstaidd@.service.d/e2e.conf": noDefaultDeps + `
[Service]
ExecStart=
` + execStart + `
# Test-only: the handler records its calls for the test to read.
ReadWritePaths=` + sdWork + `/calls
`,
		},
		etcFstaidd: true,
	}
	for _, in := range ins {
		// What an operator writes (systemctl edit fstaidd-fail@db1.socket).
		u.files[in.socket()+".d/listen.conf"] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", in.port)
	}
	return u
}

// writeInstanceConfig writes /etc/fstaidd/NAME.toml, root:fstaidd 0640 as
// the .deb makes the config: no lockdir, so the state directory is used.
func (sd *systemd) writeInstanceConfig(in instance) {
	sd.t.Helper()
	p := filepath.Join(sd.work, "etc-fstaidd", in.name+".toml")
	writeFile(sd.t, p, fmt.Sprintf(`[global]
port = %d
interval = 0.5
maxattempts = 1
target = %q

[handler]
command = "%s/instance-handler.sh"
timeout = 10

[primary]
http = "http://%s/"
timeout = 2

[[user]]
userid = %q
password = %q
`, in.port, in.name, sdWork, in.targetAddr, authUser, authPass))
	if err := os.Chown(p, 0, sd.gid); err != nil {
		sd.t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		sd.t.Fatal(err)
	}
}

// startInstanceTarget runs in's target in systemd's network namespace.
func (sd *systemd) startInstanceTarget(in *instance) {
	sd.t.Helper()
	ctrl := filepath.Join(sd.work, "target-"+in.name)
	os.MkdirAll(ctrl, 0o755)
	os.Remove(filepath.Join(ctrl, "ready"))
	in.target = startProcArgv(sd.root, "target "+in.name, filepath.Join(sd.work, "target-"+in.name+".log"), []string{envRole + "=target"},
		"nsenter", "--net=/proc/"+strconv.Itoa(sd.pid)+"/ns/net", "--", selfBin, in.targetAddr, ctrl)
	waitReady(sd.t, in.target, filepath.Join(ctrl, "ready"))
}

// instanceStatus reads in's /status through its socket.
func (sd *systemd) instanceStatus(in instance) (*status, error) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/status", in.port), nil)
	req.SetBasicAuth(authUser, authPass)
	resp, err := sd.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st status
	return &st, json.NewDecoder(resp.Body).Decode(&st)
}

// cli runs the fstaidd under test inside systemd's namespaces, from a
// shell's clean environment (no STATE_DIRECTORY: not run by a unit), and
// returns its output and exit status.
func (sd *systemd) cli(args ...string) (string, int) {
	sd.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"-t", strconv.Itoa(sd.pid), "-a", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", sdWork + "/bin/fstaidd"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", argv...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		sd.t.Fatalf("nsenter fstaidd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

// waitOnFailure waits until the on-failure command has written path (in
// the work directory) and returns its content; on a timeout it shows the
// unit that should have run it.
func (sd *systemd) waitOnFailure(path, unit, what string) string {
	sd.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return string(b)
		}
		if time.Now().After(deadline) {
			st, _ := sd.nsenter("systemctl", "status", "--no-pager", "-l", unit)
			j, _ := sd.nsenter("journalctl", "--no-pager", "-o", "cat", "-n", "30")
			sd.t.Fatalf("timed out after 15s waiting for %s:\n%s\njournal:\n%s", what, st, j)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSystemdInstances runs two monitors side by side from the shipped
// templates under a real systemd (issue 15, "many targets on one host"):
// fstaidd@db1 and fstaidd@db2, each with its config in /etc/fstaidd, its
// target, its socket and its state directory. db1's target dies and db1
// fails over; db2 stays armed with an empty state directory, and db1's
// record sits in db1's. The CLI finds each by -i. The OnFailure= example
// runs the operator's command for db1's exits 10 and 12, with systemd's
// MONITOR_* variables, and not for db2's clean stop.
func TestSystemdInstances(t *testing.T) {
	db1 := &instance{name: "db1", port: 8181, targetAddr: "127.0.0.1:9101"}
	db2 := &instance{name: "db2", port: 8182, targetAddr: "127.0.0.1:9102"}
	sd := bootSystemdWith(t, instanceUnits(t, *db1, *db2))
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) { sd.t = t; f(t) }) {
			sd.t = t
			t.FailNow()
		}
		sd.t = t
	}
	for _, in := range []*instance{db1, db2} {
		sd.writeInstanceConfig(*in)
		sd.startInstanceTarget(in)
	}
	// The handler records each call under calls/TARGET.N, with the
	// record as it stood when the handler ran.
	writeFile(t, filepath.Join(sd.work, "instance-handler.sh"), `#!/bin/sh
d=`+sdWork+`/calls/$FSTAID_TARGET
n=1
while ! mkdir "$d.$n" 2>/dev/null; do n=$((n+1)); done
env | grep '^FSTAID_' | sort > "$d.$n/env"
id -u > "$d.$n/uid"
cat /var/lib/fstaidd/$FSTAID_TARGET/fstaid.*.lock > "$d.$n/lock" 2>/dev/null || echo MISSING > "$d.$n/lock"
`)
	os.Chmod(filepath.Join(sd.work, "instance-handler.sh"), 0o755)
	// The operator's OnFailure= command (/etc/fstaidd/on-failure, as the
	// shipped fstaidd-onfailure@.service runs it): one directory per run.
	onFailureDir := filepath.Join(sd.work, "onfailure")
	if err := os.Mkdir(onFailureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(onFailureDir, sd.uid, sd.gid); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sd.work, "etc-fstaidd", "on-failure"), `#!/bin/sh
d=`+sdWork+`/onfailure/$1.$MONITOR_EXIT_STATUS
mkdir "$d.tmp"
printf '%s\n' "$@" > "$d.tmp/argv"
env | grep '^MONITOR_' | sort > "$d.tmp/env"
id -u > "$d.tmp/uid"
mv "$d.tmp" "$d"
`)
	os.Chmod(filepath.Join(sd.work, "etc-fstaidd", "on-failure"), 0o755)

	pids := map[string]string{}
	step("two-instances-armed-each-on-its-socket", func(t *testing.T) {
		sd.systemctl("start", db1.socket(), db2.socket())
		sd.systemctl("start", db1.unit(), db2.unit()) // returns once both sent READY=1
		for _, in := range []*instance{db1, db2} {
			if p := sd.show(in.unit(), "FragmentPath"); p != "/run/systemd/system/fstaidd@.service" {
				t.Fatalf("%s is loaded from %q, not the shipped template", in.unit(), p)
			}
			sd.waitUnit(10*time.Second, in.name+" armed", func() bool {
				return sd.show(in.unit(), "StatusText") == "armed: watching "+in.name
			})
			st, err := sd.instanceStatus(*in)
			if err != nil || st.State != "armed" {
				t.Errorf("%s /status on port %d: %+v %v, want armed", in.name, in.port, st, err)
			}
			pids[in.name] = sd.show(in.unit(), "MainPID")
			j, _ := sd.nsenter("journalctl", "--no-pager", "-u", in.unit(), "FSTAID_ACTIVATED=true", "-o", "cat")
			if !strings.Contains(j, "serving") {
				t.Errorf("%s did not serve the socket systemd passed (no \"serving\" with FSTAID_ACTIVATED=true):\n%s", in.unit(), j)
			}
		}
		if pids["db1"] == pids["db2"] || pids["db1"] == "0" {
			t.Errorf("MainPIDs %v: want two daemons", pids)
		}
	})

	step("db1-target-dies-db1-fails-over-db2-stays-armed", func(t *testing.T) {
		db1.target.stop()
		// failed, not inactive: onfailure.conf makes exit 10 a failure.
		sd.waitUnit(20*time.Second, "fstaidd@db1 to fail over and exit 10", func() bool {
			return sd.show(db1.unit(), "ActiveState") == "failed" && sd.show(db1.unit(), "ExecMainStatus") == "10"
		})
		if n := sd.show(db1.unit(), "NRestarts"); n != "0" {
			t.Errorf("fstaidd@db1 restarted %s times after exit 10, want 0 (RestartPreventExitStatus)", n)
		}
		env, _ := os.ReadFile(filepath.Join(sd.work, "calls", "db1.1", "env"))
		if !strings.Contains(string(env), "FSTAID_REASON=auto") || !strings.Contains(string(env), "FSTAID_TARGET=db1") {
			t.Errorf("db1's handler env:\n%s\nwant FSTAID_REASON=auto, FSTAID_TARGET=db1", env)
		}
		if lock, _ := os.ReadFile(filepath.Join(sd.work, "calls", "db1.1", "lock")); !strings.Contains(string(lock), `"failing-over"`) {
			t.Errorf("db1's record in its state directory while its handler ran: %q, want failing-over", lock)
		}
		for _, extra := range []string{"db1.2", "db2.1"} {
			if _, err := os.Stat(filepath.Join(sd.work, "calls", extra)); err == nil {
				t.Errorf("handler call %s: want exactly one call, db1's", extra)
			}
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", sd.pid, db1.lockFile()))
		var r record
		if err != nil || json.Unmarshal(b, &r) != nil || r.State != "done" || r.Event == nil || r.Event.Target != "db1" {
			t.Errorf("db1's record %s: %v %s, want done for target db1", db1.lockFile(), err, b)
		}
		// db2 watches on, undisturbed: same process, armed, and nothing
		// in its state directory.
		time.Sleep(2 * time.Second) // four of db2's rounds
		if a, p, n := sd.show(db2.unit(), "ActiveState"), sd.show(db2.unit(), "MainPID"), sd.show(db2.unit(), "NRestarts"); a != "active" || p != pids["db2"] || n != "0" {
			t.Errorf("fstaidd@db2 after db1's failover: %s MainPID %s NRestarts %s, want active, %s, 0", a, p, n, pids["db2"])
		}
		if st, err := sd.instanceStatus(*db2); err != nil || st.State != "armed" || st.Record != nil {
			t.Errorf("db2 /status: %+v %v, want armed without a record", st, err)
		}
		if s := sd.show(db2.unit(), "StatusText"); s != "armed: watching db2" {
			t.Errorf("fstaidd@db2 STATUS=%q, want armed", s)
		}
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/var/lib/fstaidd/db2", sd.pid))
		if err != nil || len(entries) != 0 {
			t.Errorf("db2's state directory /var/lib/fstaidd/db2: %v %v, want it there and empty", entries, err)
		}
		top, _ := os.ReadDir(fmt.Sprintf("/proc/%d/root/var/lib/fstaidd", sd.pid))
		var names []string
		for _, e := range top {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != "db1 db2" {
			t.Errorf("/var/lib/fstaidd holds %q, want only the instances' directories db1 db2", names)
		}
	})

	step("onfailure-runs-the-command-for-db1-exit-10", func(t *testing.T) {
		d := filepath.Join(onFailureDir, "fstaidd@db1.10")
		env := sd.waitOnFailure(filepath.Join(d, "env"), "fstaidd-onfailure@fstaidd@db1.service", "/etc/fstaidd/on-failure to run for fstaidd@db1's exit 10")
		for _, want := range []string{"MONITOR_EXIT_CODE=exited", "MONITOR_EXIT_STATUS=10", "MONITOR_SERVICE_RESULT=exit-code", "MONITOR_UNIT=fstaidd@db1.service"} {
			if !strings.Contains(env, want+"\n") {
				t.Errorf("on-failure's environment lacks %s:\n%s", want, env)
			}
		}
		argv, _ := os.ReadFile(filepath.Join(d, "argv"))
		uid, _ := os.ReadFile(filepath.Join(d, "uid"))
		if strings.TrimSpace(string(argv)) != "fstaidd@db1" || strings.TrimSpace(string(uid)) != strconv.Itoa(sd.uid) {
			t.Errorf("on-failure ran with argv %q as uid %q, want fstaidd@db1 as %d (%s)", argv, uid, sd.uid, sdUser)
		}
		if r := sd.show("fstaidd-onfailure@fstaidd@db1.service", "Result"); r != "success" {
			t.Errorf("fstaidd-onfailure@fstaidd@db1.service Result=%s, want success", r)
		}
	})

	step("cli-finds-each-instance-by-i", func(t *testing.T) {
		// Without its socket, a request does not start db1 again.
		sd.systemctl("stop", db1.socket())
		out, code := sd.cli("status", "-i", "db1")
		if code != 23 || !strings.Contains(out, "not reachable") || !strings.Contains(out, "lock "+db1.lockFile()+": LOCKED") {
			t.Errorf("fstaidd status -i db1: exit %d\n%s\nwant 23, the daemon unreachable and the record LOCKED in %s", code, out, db1.lockFile())
		}
		out, code = sd.cli("status", "-i", "db2", "-json")
		var st struct{ Daemon *status }
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Daemon == nil || st.Daemon.State != "armed" {
			t.Errorf("fstaidd status -i db2 -json: exit %d\n%s\nwant 0 and armed", code, out)
		}
		if out, code := sd.cli("status", "-i", "db2", "-config", "/etc/fstaidd/db2.toml"); code != 2 || !strings.Contains(out, "give one of them") {
			t.Errorf("fstaidd status -i db2 -config ...: exit %d %q, want 2 refusing both", code, out)
		}
	})

	step("db1-locked-exits-12-onfailure-again", func(t *testing.T) {
		sd.systemctl("reset-failed", db1.unit())
		sd.nsenter("systemctl", "start", db1.unit()) // fails: exits 12 before READY=1
		sd.waitUnit(15*time.Second, "fstaidd@db1 to exit 12", func() bool {
			return sd.show(db1.unit(), "ActiveState") == "failed" && sd.show(db1.unit(), "ExecMainStatus") == "12"
		})
		env := sd.waitOnFailure(filepath.Join(onFailureDir, "fstaidd@db1.12", "env"), "fstaidd-onfailure@fstaidd@db1.service", "on-failure for fstaidd@db1's exit 12")
		for _, want := range []string{"MONITOR_EXIT_STATUS=12", "MONITOR_SERVICE_RESULT=exit-code", "MONITOR_UNIT=fstaidd@db1.service"} {
			if !strings.Contains(env, want+"\n") {
				t.Errorf("on-failure's environment for exit 12 lacks %s:\n%s", want, env)
			}
		}
		if a := sd.show(db2.unit(), "ActiveState"); a != "active" {
			t.Errorf("fstaidd@db2 is %s, want active", a)
		}
	})

	step("unlock-i-rearms-db1-only", func(t *testing.T) {
		out, code := sd.cli("unlock", "-i", "db1", "-yes")
		if code != 0 || !strings.Contains(out, "removed "+db1.lockFile()) {
			t.Fatalf("fstaidd unlock -i db1 -yes: exit %d\n%s", code, out)
		}
		sd.startInstanceTarget(db1)
		sd.systemctl("reset-failed", db1.unit())
		sd.systemctl("start", db1.socket())
		sd.systemctl("start", db1.unit())
		sd.waitUnit(10*time.Second, "db1 armed again", func() bool {
			return sd.show(db1.unit(), "StatusText") == "armed: watching db1"
		})
		if st, err := sd.instanceStatus(*db1); err != nil || st.State != "armed" {
			t.Errorf("db1 /status after unlock -i: %+v %v, want armed", st, err)
		}
		if p := sd.show(db2.unit(), "MainPID"); p != pids["db2"] {
			t.Errorf("fstaidd@db2 MainPID %s, want still %s", p, pids["db2"])
		}
	})

	step("clean-stop-no-onfailure", func(t *testing.T) {
		sd.systemctl("stop", db2.unit())
		if st, a := sd.show(db2.unit(), "ExecMainStatus"), sd.show(db2.unit(), "ActiveState"); st != "0" || a != "inactive" {
			t.Errorf("fstaidd@db2 stopped: status %s, %s; want 0, inactive", st, a)
		}
		time.Sleep(2 * time.Second)
		const u = "fstaidd-onfailure@fstaidd@db2.service"
		if id := sd.show(u, "InvocationID"); id != "" {
			t.Errorf("%s ran (invocation %s) for db2's clean stop", u, id)
		}
		if entries, _ := filepath.Glob(filepath.Join(onFailureDir, "fstaidd@db2*")); len(entries) != 0 {
			t.Errorf("on-failure ran for db2's clean stop: %v", entries)
		}
	})
}
