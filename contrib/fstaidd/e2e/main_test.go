// Package e2e runs the real fstaidd binary between real hosts (network
// namespaces) and under a real systemd, and checks what an operator relies
// on: exit statuses, the handler's argv and environment, and the failover
// record. See README.md in this directory.
//
// Network safety: TestMain first re-executes the test binary inside fresh
// network, mount and pid namespaces (unshare --net --mount --pid
// --propagation private), with a tmpfs on /run and on /run/netns there.
// The harness's own network namespace then has only a downed lo: a
// command that runs in the wrong namespace by mistake reaches nothing,
// and every namespace, mount and process the suite made dies with it,
// even if it crashes. Addresses (10.231.0.0/16) are used only inside the
// namespaces the suite creates.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Environment switches of the re-executed test binary.
const (
	// envInner marks the binary running inside the harness's namespaces.
	envInner = "FSTAID_E2E_INNER"
	// envRole makes the binary a helper server (target, proxy) instead
	// of running tests.
	envRole = "FSTAID_E2E_ROLE"
	// envFstaidd is the path of the fstaidd binary, built once by the
	// outer process (which still has the network to reach the module
	// proxy) and reused by every scenario. Set by the caller, it names a
	// binary to test instead of building one.
	envFstaidd = "FSTAID_E2E_FSTAIDD"
	// envRequire, set to 1 (CI does), turns every "cannot run here" skip
	// into a failure: where the suite is meant to run, a missing tool
	// must not pass as a green run that tested nothing.
	envRequire = "FSTAID_E2E_REQUIRE"
)

var (
	// skipReason, when set, makes every test skip with it (needHarness).
	skipReason string
	// fstaiddBin is the fstaidd binary under test.
	fstaiddBin string
	// selfBin is this test binary, re-executed for helper roles.
	selfBin string
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	if os.Getenv(envInner) == "" {
		os.Exit(outer(m))
	}
	os.Exit(inner(m))
}

// outer runs in the caller's namespaces: it checks that the suite can
// run, builds fstaidd once, and re-executes the test binary inside fresh
// namespaces. It never sends network traffic itself.
func outer(m *testing.M) int {
	if reason := cannotRun(); reason != "" {
		if required() {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: %s=1 but the suite cannot run: %s\n", envRequire, reason)
			return 1
		}
		skipReason = reason
		fmt.Fprintln(os.Stderr, "e2e: SKIPPING the end-to-end suite:", reason)
		return m.Run()
	}
	binDir, err := os.MkdirTemp("", "fstaid-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	bin := filepath.Join(binDir, "fstaidd")
	if prebuilt := os.Getenv(envFstaidd); prebuilt != "" {
		// A binary given from outside (another revision, to show that a
		// campaign finds its bugs): used as it is.
		bin = prebuilt
	} else if err := buildFstaidd(bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building fstaidd:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// --pid --fork --kill-child: the inner test binary is PID 1 of its
	// own pid namespace, so when it exits (or is killed) the kernel kills
	// every process it started, and the network namespaces they held go
	// with them. Pdeathsig kills unshare if this process dies first.
	args := append([]string{"--net", "--mount", "--pid", "--fork", "--kill-child",
		"--mount-proc", "--propagation", "private", "--", self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInner+"=1", envFstaidd+"="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread() // Pdeathsig follows the thread that forked
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: unshare:", err)
		return 1
	}
	return 0
}

// cannotRun says why the suite cannot run here, or "".
func cannotRun() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("needs root (network namespaces, mounts, a real systemd); running as uid %d — run it as root, see contrib/fstaidd/e2e/README.md", os.Geteuid())
	}
	for _, tool := range []string{"unshare", "ip", "nsenter", "curl", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s is not installed (%v)", tool, err)
		}
	}
	return ""
}

// buildFstaidd builds the daemon under test with the go command that
// runs this test.
func buildFstaidd(out string) error {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("no go command: %w", err)
		}
	}
	// Built as contrib/deb/build.sh builds the shipped binary (static,
	// -trimpath, -tags grpcnotrace): the suite tests what is packaged, and
	// CI compiles the AWS SDK once for both.
	cmd := exec.Command(goCmd, "build", "-trimpath", "-tags", "grpcnotrace", "-o", out, "github.com/fstaid/fstaid/contrib/fstaidd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// inner runs inside the fresh namespaces: it hides the host's /run behind
// a tmpfs (so `ip netns` keeps its files in memory that dies with us),
// binds a hosts file naming the test hosts over /etc/hosts (private
// mount namespace: the host's file is untouched), then runs the tests.
func inner(m *testing.M) int {
	fstaiddBin = os.Getenv(envFstaidd)
	var err error
	if selfBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := setupInner(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: preparing the harness namespaces:", err)
		return 1
	}
	return m.Run()
}

func setupInner() error {
	// Belt and braces: unshare --propagation private already did this.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on /run: %w", err)
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", "/run/netns", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on /run/netns: %w", err)
	}
	hosts := "/run/fstaid-e2e-hosts"
	if err := os.WriteFile(hosts, []byte(hostsFile), 0o644); err != nil {
		return err
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding %s over /etc/hosts: %w", hosts, err)
	}
	return nil
}

// required reports whether the suite must run (envRequire).
func required() bool { return os.Getenv(envRequire) == "1" }

// cannotRunHere skips t with reason, or fails it when the suite is
// required to run (envRequire).
func cannotRunHere(t *testing.T, reason string) {
	t.Helper()
	if required() {
		t.Fatalf("%s=1 but this test cannot run: %s", envRequire, reason)
	}
	t.Skip("SKIPPED: " + reason)
}

// needHarness skips the test, saying why, when the suite cannot run, and
// makes sure it runs inside the harness's namespaces.
func needHarness(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		cannotRunHere(t, skipReason)
	}
	if os.Getenv(envInner) == "" || fstaiddBin == "" {
		t.Fatal("not inside the harness namespaces: refusing to touch the network")
	}
}
