package systemd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket binds a unixgram socket where systemd's would be, points
// NOTIFY_SOCKET at it, and returns it for reading the datagrams back.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	// t.TempDir's path can exceed the 108 bytes of sun_path.
	dir, err := os.MkdirTemp("", "n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return bindNotify(t, filepath.Join(dir, "notify"))
}

func bindNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return c
}

// readDatagram returns the next datagram, failing the test after 5s.
func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestNotifierSendsExactPayloads(t *testing.T) {
	c := notifySocket(t)
	n := NewNotifier()
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"Ready", n.Ready, "READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())},
		{"Status", func() error { return n.Status("unarmed: primary failed") }, "STATUS=unarmed: primary failed"},
		// A newline would start a second assignment: READY=1 here must
		// not reach systemd as its own line.
		{"Status/newlines", func() error { return n.Status("armed\nREADY=1\r\nx\ry") }, "STATUS=armed READY=1 x y"},
		{"Status/empty", func() error { return n.Status("") }, "STATUS="},
		{"Watchdog", n.Watchdog, "WATCHDOG=1"},
		{"Stopping", n.Stopping, "STOPPING=1"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("%s() = %v", tc.name, err)
		}
		if got := readDatagram(t, c); got != tc.want {
			t.Errorf("%s() sent %q, want %q", tc.name, got, tc.want)
		}
	}
	// RELOADING=1 carries CLOCK_MONOTONIC in µs (monotonic itself is
	// checked against the runtime's clock in monotonic_linux_test.go).
	before, _ := monotonic()
	if err := n.Reloading(); err != nil {
		t.Fatalf("Reloading() = %v", err)
	}
	after, _ := monotonic()
	got := readDatagram(t, c)
	usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	v, err := strconv.ParseInt(usec, 10, 64)
	if !ok || err != nil || v < int64(before/time.Microsecond) || v > int64(after/time.Microsecond) || before <= 0 {
		t.Errorf("Reloading() sent %q, want RELOADING=1 and MONOTONIC_USEC between %d and %d", got, before/time.Microsecond, after/time.Microsecond)
	}
	// Sending must not consume NOTIFY_SOCKET: later messages need it.
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Error("NOTIFY_SOCKET was unset by sending")
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	// systemd may hand out an abstract socket ("@..."), in containers for
	// instance.
	name := "@fstaid-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := bindNotify(t, name)
	if err := NewNotifier().Watchdog(); err != nil {
		t.Fatalf("Watchdog() = %v", err)
	}
	if got := readDatagram(t, c); got != "WATCHDOG=1" {
		t.Errorf("sent %q, want WATCHDOG=1", got)
	}
}

func TestNotifierWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	for _, n := range []*Notifier{NewNotifier(), nil} {
		if n.Enabled() {
			t.Errorf("(%p).Enabled() = true without NOTIFY_SOCKET", n)
		}
		for name, f := range map[string]func() error{
			"Ready": n.Ready, "Status": func() error { return n.Status("x") },
			"Stopping": n.Stopping, "Watchdog": n.Watchdog,
		} {
			if err := f(); err != nil {
				t.Errorf("(%p).%s() = %v, want nil", n, name, err)
			}
		}
	}
}

func TestNotifierReportsUnreachableSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "n")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "absent"))
	err = NewNotifier().Ready()
	if err == nil || !strings.HasPrefix(err.Error(), "systemd: notify READY: ") || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Ready() = %v, want a \"systemd: notify READY: \" error wrapping ENOENT", err)
	}
}
