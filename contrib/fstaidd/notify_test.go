package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket binds a unixgram socket for NOTIFY_SOCKET. Bound with
// listenNotify, a goroutine of its own collects what arrives, in real
// time; bound with bindNotify, nothing reads until take does, as a test
// under testing/synctest needs.
type notifySocket struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	at   []time.Time
}

func bindNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A directory of its own under /tmp: t.TempDir's path can exceed
	// the 108 bytes of a socket address.
	dir, err := os.MkdirTemp("", "n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &notifySocket{conn: conn}
}

func listenNotify(t *testing.T) *notifySocket {
	n := bindNotify(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			n.add(buf[:k])
		}
	}()
	t.Cleanup(func() { n.conn.Close(); <-done })
	return n
}

func (n *notifySocket) add(datagram []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, line := range strings.Split(string(datagram), "\n") {
		if line != "" {
			n.msgs = append(n.msgs, line)
			n.at = append(n.at, time.Now())
		}
	}
}

// take reads what is queued on a socket from bindNotify, without
// waiting, and returns the lines that arrived since the last call. A
// datagram is queued by the send itself, so after synctest.Wait take
// sees everything the bubble sent. The kernel queues at most
// net.unix.max_dgram_qlen (10) datagrams before a sender blocks: call
// take at least every few pings.
func (n *notifySocket) take(t *testing.T) []string {
	t.Helper()
	raw, err := n.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	seen := len(n.msgs)
	n.mu.Unlock()
	buf := make([]byte, 4096)
	for {
		var k int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			k, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			return true // never wait for the poller
		}); err != nil {
			t.Fatal(err)
		}
		if rerr == syscall.EAGAIN {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
		n.add(buf[:k])
	}
	msgs, _ := n.snapshot()
	return msgs[seen:]
}

func (n *notifySocket) snapshot() ([]string, []time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...), append([]time.Time(nil), n.at...)
}

// waitFor waits, in real time, for a line with prefix on a socket from
// listenNotify.
func (n *notifySocket) waitFor(t *testing.T, prefix string) {
	t.Helper()
	n.waitForAfter(t, prefix, time.Time{})
}

// waitForAfter waits, in real time, for a line with prefix that arrived
// after t0.
func (n *notifySocket) waitForAfter(t *testing.T, prefix string, t0 time.Time) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		msgs, at := n.snapshot()
		for i, m := range msgs {
			if strings.HasPrefix(m, prefix) && at[i].After(t0) {
				return nil
			}
		}
		return fmt.Errorf("no %q after %v among %q", prefix, t0.Format(time.StampMilli), msgs)
	})
}
