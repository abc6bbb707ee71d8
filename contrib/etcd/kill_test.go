package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// childEnv makes the test binary a monitor process (see TestMain): it
// fails over against etcd at $FSTAID_ETCD_CHILD and its handler announces
// itself by creating $FSTAID_ETCD_MARK, then hangs until killed.
const childEnv = "FSTAID_ETCD_CHILD"

func runChildMonitor() int {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{os.Getenv(childEnv)}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	s, err := NewStore(c, "/sigkill", WithMonitorID("child"), WithHolderTTL(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return errors.New("down") }), time.Second),
		fstaid.WithMaxAttempts(1),
		fstaid.WithStartupCheck(fstaid.StartupCheckOff),
		fstaid.WithInterval(50*time.Millisecond),
		fstaid.WithHandler("hang", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			os.WriteFile(os.Getenv("FSTAID_ETCD_MARK"), nil, 0o600)
			<-ctx.Done()
			return ctx.Err()
		}), time.Minute),
		fstaid.WithLock(s.Lock()),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Fprintln(os.Stderr, m.Run(context.Background()))
	return 4
}

// The monitor holding the lock is SIGKILLed mid-handler (a real process):
// the record stays, a second monitor — armed before the kill, then seeing
// the target dead — runs no handler, and Status calls the failover
// interrupted once the dead holder's lease expires.
func TestSIGKILLedHolderMidHandler(t *testing.T) {
	srv := startEtcd(t)
	ctx := ctxTimeout(t, 30*time.Second)
	mark := filepath.Join(t.TempDir(), "handler-started")

	// The survivor is armed before the failover starts.
	survivor := newStore(t, "/sigkill", "survivor", endpoints(srv))
	var handled atomic.Int32
	view := &target{}
	m := newMonitor(t, monitorSpec{store: survivor, view: view, handled: &handled})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- m.Run(runCtx) }()
	eventually(t, 10*time.Second, "survivor armed", func() bool { return m.Status().State == fstaid.StateArmed })

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+srv.endpoint, "FSTAID_ETCD_MARK="+mark)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	eventually(t, 15*time.Second, "the child's handler starts", func() bool {
		_, err := os.Stat(mark)
		return err == nil
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v, stderr %s", err, stderr.String())
	}

	// The target is dead for the survivor too.
	view.dead.Store(true)
	var err error
	select {
	case err = <-result:
	case <-time.After(10 * time.Second):
		t.Fatal("the survivor did not stop")
	}
	var le *fstaid.LockedError
	if !errors.As(err, &le) || le.Record == nil || le.Record.State != fstaid.RecordFailingOver {
		t.Fatalf("survivor Run = %v, want a LockedError with the child's failing-over record", err)
	}
	if n := handled.Load(); n != 0 {
		t.Fatalf("the survivor ran the handler %d times after the holder was killed; want 0", n)
	}
	eventually(t, 10*time.Second, "Status reports the interruption", func() bool {
		st, err := survivor.Status(ctx)
		return err == nil && st.Interrupted && st.Record != nil && st.Holder == nil
	})
}
