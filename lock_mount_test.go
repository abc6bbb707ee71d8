package fstaid_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
)

// mountNSInner marks the copy of the test binary that runs inside its
// own mount namespace (TestFileLockOnRealFileSystems).
const mountNSInner = "FSTAID_TEST_MOUNTNS"

// TestFileLockOnRealFileSystems runs Probe, Acquire and Preflight on file
// systems that break the usual assumptions (issue 13 item 5): a real
// vfat image, which refuses hard links, tmpfs mounts that are full, and
// (preflight) a read-only mount and a tmpfs.
//
// Each subtest re-runs the test binary under `unshare --mount
// --propagation private` and mounts there, inside t.TempDir(): nothing it
// mounts is visible outside, and every mount goes when the inner process
// exits. It needs root, unshare, and for vfat mkfs.vfat (dosfstools) and
// a vfat driver: the kernel's (mount -o loop) or, on a kernel built
// without vfat like this testbed's, fusefat, the FUSE FAT driver, on the
// same image. Without them it skips, unless FSTAID_E2E_REQUIRE=1 (CI sets
// it): then a missing tool fails the test.
func TestFileLockOnRealFileSystems(t *testing.T) {
	inner := os.Getenv(mountNSInner) == "1"
	t.Run("vfat", func(t *testing.T) {
		if !inner {
			if reason := vfatUnavailable(); reason != "" {
				cannotRunHere(t, reason)
			}
			rerunInMountNS(t)
			return
		}
		vfatInside(t)
	})
	t.Run("tmpfs-full", func(t *testing.T) {
		if !inner {
			rerunInMountNS(t)
			return
		}
		tmpfsFullInside(t)
	})
	t.Run("preflight", func(t *testing.T) {
		if !inner {
			rerunInMountNS(t)
			return
		}
		preflightInside(t)
	})
}

// preflightInside checks Preflight against real mounts outside the
// temporary directories (which it would always call not persistent): a
// directory of the test's bound over an empty system directory passes
// every property; remounted read-only it is readable but not writable,
// Remove fails without ErrRecordChanged, and Run refuses it; a tmpfs
// there is writable but not persistent.
func preflightInside(t *testing.T) {
	ctx := t.Context()
	var mnt string
	for _, d := range []string{"/srv", "/media", "/mnt"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			mnt = d
			break
		}
	}
	if mnt == "" {
		cannotRunHere(t, "no /srv, /media or /mnt to mount over")
	}
	if err := syscall.Mount(t.TempDir(), mnt, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount at %s: %v", mnt, err)
	}
	t.Cleanup(func() { unmount(t, mnt) })

	lockPath := filepath.Join(mnt, "fstaid.8080.lock")
	l := fstaid.NewFileLock(lockPath)
	if rec, err := fstaid.Preflight(ctx, l); rec != nil || err != nil {
		t.Fatalf("Preflight on a writable, persistent directory = %+v, %v; want nothing", rec, err)
	}
	if err := l.Acquire(ctx, &fstaid.Record{State: fstaid.RecordDone, Host: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", mnt, err)
	}
	shown, err := fstaid.Preflight(ctx, fstaid.NewFileLock(lockPath))
	if shown == nil || shown.Host != "a" {
		t.Errorf("Preflight on the read-only directory: record %+v, want the one written", shown)
	}
	wantProblems(t, "read-only mount", err, map[fstaid.LockProperty]error{fstaid.LockWritable: syscall.EROFS})
	if err := fstaid.NewFileLock(lockPath).Remove(ctx, shown); !errors.Is(err, syscall.EROFS) || errors.Is(err, fstaid.ErrRecordChanged) {
		t.Errorf("Remove on a read-only mount = %v, want EROFS", err)
	}
	if rec, _ := fstaid.NewFileLock(lockPath).Load(ctx); rec == nil {
		t.Error("a failed Remove took the record")
	}
	free := fstaid.NewFileLock(filepath.Join(mnt, "fstaid.8081.lock"))
	m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(free))
	if err := m.Run(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, syscall.EROFS) {
		t.Errorf("Run on a read-only mount = %v, want ErrLockUnavailable wrapping EROFS", err)
	}

	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount -t tmpfs at %s: %v", mnt, err)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	_, err = fstaid.Preflight(ctx, fstaid.NewFileLock(lockPath))
	wantProblems(t, "tmpfs", err, map[fstaid.LockProperty]error{fstaid.LockPersistent: nil})
	if p := problems(t, err)[fstaid.LockPersistent]; p == nil || !strings.Contains(p.Error(), "tmpfs") {
		t.Errorf("Preflight on tmpfs: persistent problem %v, want it to name tmpfs", p)
	}
}

// cannotRunHere skips t with reason, or fails it when the environment
// says the test must run (FSTAID_E2E_REQUIRE=1).
func cannotRunHere(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("FSTAID_E2E_REQUIRE") == "1" {
		t.Fatalf("FSTAID_E2E_REQUIRE=1 but this test cannot run: %s", reason)
	}
	t.Skipf("skipped: %s (set FSTAID_E2E_REQUIRE=1 to make this a failure)", reason)
}

// vfatUnavailable says what is missing to mount a vfat image, or "".
func vfatUnavailable() string {
	if _, err := exec.LookPath("mkfs.vfat"); err != nil {
		return fmt.Sprintf("mkfs.vfat not found (apt-get install dosfstools): %v", err)
	}
	if kernelHasVfat() {
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			return fmt.Sprintf("no loop devices to mount the vfat image: %v", err)
		}
		return ""
	}
	if _, err := exec.LookPath("fusefat"); err != nil {
		return fmt.Sprintf("the kernel has no vfat driver and fusefat is not installed (apt-get install fusefat): %v", err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Sprintf("the kernel has no vfat driver and there is no /dev/fuse for fusefat: %v", err)
	}
	return ""
}

func kernelHasVfat() bool {
	data, err := os.ReadFile("/proc/filesystems")
	return err == nil && slices.ContainsFunc(strings.Split(string(data), "\n"), func(l string) bool {
		return strings.TrimSpace(l) == "vfat"
	})
}

// rerunInMountNS runs t (a subtest) again in a copy of the test binary
// inside a private mount namespace, and passes, fails or skips as it did.
func rerunInMountNS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		cannotRunHere(t, fmt.Sprintf("needs root to mount in a private mount namespace; running as uid %d", os.Geteuid()))
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		cannotRunHere(t, fmt.Sprintf("unshare not found (util-linux): %v", err))
	}
	top, sub, _ := strings.Cut(t.Name(), "/")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private",
		os.Args[0], "-test.run=^"+top+"$/^"+sub+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), mountNSInner+"=1")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case bytes.Contains(out, []byte("--- PASS: "+t.Name())) && err == nil:
		t.Logf("inside the mount namespace:\n%s", out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())) && err == nil:
		t.Skipf("skipped inside the mount namespace:\n%s", out)
	default:
		t.Fatalf("inside the mount namespace: %v\n%s", err, out)
	}
}

// vfatInside makes a vfat image, mounts it and checks that Probe tells
// the truth about Acquire there: never Probe passing and Acquire failing.
func vfatInside(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fat.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.vfat", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	driver := mountVfat(t, img, mnt)

	lockPath := filepath.Join(mnt, "fstaid.8080.lock")
	l := fstaid.NewFileLock(lockPath)
	perr := l.Probe(ctx)
	if names := dirNames(t, mnt); len(names) != 0 {
		t.Errorf("Probe (%v) left %v in the directory", perr, names)
	}
	aerr := l.Acquire(ctx, &fstaid.Record{State: fstaid.RecordFailingOver, Host: "a"})
	t.Logf("vfat through %s: Probe = %v; Acquire = %v", driver, perr, aerr)
	if perr == nil {
		if aerr != nil {
			t.Fatalf("Probe passed but Acquire failed on vfat (%s): %v", driver, aerr)
		}
		rec, err := fstaid.NewFileLock(lockPath).Load(ctx)
		if err != nil || rec == nil || rec.Host != "a" {
			t.Fatalf("Load after Acquire = %+v, %v", rec, err)
		}
		if err := fstaid.NewFileLock(lockPath).Acquire(ctx, &fstaid.Record{State: fstaid.RecordFailingOver, Host: "b"}); !errors.Is(err, fstaid.ErrLocked) {
			t.Errorf("a second writer's Acquire = %v, want ErrLocked", err)
		}
		if err := l.Update(ctx, &fstaid.Record{State: fstaid.RecordDone, Host: "a"}); err != nil {
			t.Errorf("Update = %v", err)
		}
		if names := dirNames(t, mnt); !slices.Equal(names, []string{"fstaid.8080.lock"}) {
			t.Errorf("directory holds %v, want only the lock", names)
		}
		return
	}
	// Probe refused the directory: it must say why, and Acquire must
	// agree (a failover would fail there), and a Monitor must refuse to
	// start on it (fstaidd exits 78).
	if !errors.Is(perr, fstaid.ErrNoExclusivePublish) || !strings.Contains(perr.Error(), "link") || !strings.Contains(perr.Error(), "renameat2") || !strings.Contains(perr.Error(), mnt) {
		t.Errorf("Probe = %v, want ErrNoExclusivePublish naming link, renameat2 and %s", perr, mnt)
	}
	if !errors.Is(aerr, fstaid.ErrNoExclusivePublish) {
		t.Errorf("Acquire after a failed Probe = %v, want ErrNoExclusivePublish as Probe said", aerr)
	}
	_, err := fstaid.Preflight(ctx, l)
	wantProblems(t, "vfat", err, map[fstaid.LockProperty]error{fstaid.LockWritable: fstaid.ErrNoExclusivePublish, fstaid.LockPersistent: nil})
	if names := dirNames(t, mnt); len(names) != 0 {
		t.Errorf("a failed Acquire left %v", names)
	}
	h := &handlerLog{}
	m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", h, time.Second), fstaid.WithLock(l))
	if err := m.Run(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, fstaid.ErrNoExclusivePublish) {
		t.Errorf("Run on vfat through %s = %v, want ErrLockUnavailable wrapping ErrNoExclusivePublish", driver, err)
	}
	if h.count() != 0 {
		t.Errorf("the handler ran %d times", h.count())
	}
}

// mountVfat mounts img at mnt with the kernel's vfat driver, or with
// fusefat where the kernel has none, unmounted when t ends. It returns
// which.
func mountVfat(t *testing.T, img, mnt string) string {
	t.Helper()
	if kernelHasVfat() {
		if out, err := exec.Command("mount", "-o", "loop", "-t", "vfat", img, mnt).CombinedOutput(); err != nil {
			cannotRunHere(t, fmt.Sprintf("mount -o loop -t vfat: %v: %s", err, out))
		}
		t.Cleanup(func() { unmount(t, mnt) })
		return "the kernel's vfat driver on a loop device"
	}
	// In the foreground, as this process's child: it cannot outlive the
	// test (Pdeathsig, and the cleanup waits for it).
	var log bytes.Buffer
	cmd := exec.Command("fusefat", "-f", "-o", "rw+", img, mnt)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("fusefat: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Unmount(mnt, 0)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("fusefat did not exit after the unmount; killed. Its log:\n%s", log.String())
		}
	})
	const fuseMagic = 0x65735546 // FUSE_SUPER_MAGIC
	for deadline := time.Now().Add(10 * time.Second); ; {
		var st syscall.Statfs_t
		if syscall.Statfs(mnt, &st) == nil && st.Type == fuseMagic {
			return "fusefat (FUSE; the kernel has no vfat driver)"
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("fusefat exited before mounting: %v\n%s", err, log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fusefat did not mount %s within 10s:\n%s", mnt, log.String())
		}
	}
}

func unmount(t *testing.T, mnt string) {
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Errorf("unmounting %s: %v", mnt, err)
	}
}

// tmpfsFullInside fills small tmpfs mounts (blocks, then inodes) and
// checks that Probe and Acquire report ENOSPC naming the directory and
// leave no temporary file behind.
func tmpfsFullInside(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		fill       func(dir string) error
	}{
		{"blocks", "size=64k", func(dir string) error {
			f, err := os.Create(filepath.Join(dir, "filler"))
			if err != nil {
				return err
			}
			defer f.Close()
			chunk := make([]byte, 4096)
			for {
				if _, err := f.Write(chunk); err != nil {
					return err
				}
			}
		}},
		{"inodes", "size=1m,nr_inodes=8", func(dir string) error {
			for i := 0; ; i++ {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("filler%d", i)))
				if err != nil {
					return err
				}
				f.Close()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mnt := filepath.Join(t.TempDir(), "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, tc.opts); err != nil {
				t.Fatalf("mount -t tmpfs -o %s: %v", tc.opts, err)
			}
			t.Cleanup(func() { unmount(t, mnt) })
			if err := tc.fill(mnt); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs (%s) ended with %v, want ENOSPC", tc.opts, err)
			}
			full := dirNames(t, mnt)
			lockPath := filepath.Join(mnt, "fstaid.8080.lock")
			l := fstaid.NewFileLock(lockPath)
			if err := l.Probe(ctx); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), mnt) {
				t.Errorf("Probe on a full tmpfs (%s) = %v, want ENOSPC naming %s", tc.opts, err, mnt)
			}
			if names := dirNames(t, mnt); !slices.Equal(names, full) {
				t.Errorf("Probe left files: %v, was %v", names, full)
			}
			_, err := fstaid.Preflight(ctx, l)
			wantProblems(t, "full tmpfs ("+tc.opts+")", err, map[fstaid.LockProperty]error{fstaid.LockWritable: syscall.ENOSPC, fstaid.LockPersistent: nil})
			if err := l.Acquire(ctx, &fstaid.Record{State: fstaid.RecordFailingOver}); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), mnt) {
				t.Errorf("Acquire on a full tmpfs (%s) = %v, want ENOSPC naming %s", tc.opts, err, mnt)
			}
			if names := dirNames(t, mnt); !slices.Equal(names, full) {
				t.Errorf("Acquire left files: %v, was %v", names, full)
			}
			m := newMonitor(t, fstaid.WithPrimary(&script{fn: pass}, time.Second), fstaid.WithHandler("h", &handlerLog{}, time.Second), fstaid.WithLock(l))
			if err := m.Run(ctx); !errors.Is(err, fstaid.ErrLockUnavailable) || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Run on a full tmpfs = %v, want ErrLockUnavailable wrapping ENOSPC", err)
			}
			// With room again, the same directory works: the failures were
			// the fullness.
			for _, n := range full {
				os.Remove(filepath.Join(mnt, n))
			}
			if err := l.Probe(ctx); err != nil {
				t.Errorf("Probe after freeing space = %v", err)
			}
			if err := l.Acquire(ctx, &fstaid.Record{State: fstaid.RecordFailingOver}); err != nil {
				t.Errorf("Acquire after freeing space = %v", err)
			}
			if _, err := os.Stat(lockPath); errors.Is(err, fs.ErrNotExist) {
				t.Error("no lock file after Acquire")
			}
		})
	}
}

// dirNames lists dir's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
