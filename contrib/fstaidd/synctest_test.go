package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/fstaid/fstaid"
)

// The daemon runs under testing/synctest, where time is fake and exact,
// on an in-memory listener instead of a socket: a goroutine blocked on a
// real socket keeps the bubble's clock still.

// memListener hands the daemon one end of a net.Pipe per request.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *memListener) Addr() net.Addr { return &net.UnixAddr{Name: "memory", Net: "memory"} }

// request sends one request through l, as request does through a socket.
func (l *memListener) request(ctx context.Context, method, path, user, password string) (*http.Response, []byte, error) {
	client, server := net.Pipe()
	defer client.Close()
	select {
	case l.conns <- server:
	case <-l.closed:
		return nil, nil, net.ErrClosed
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fstaidd"+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Close = true
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if err := req.Write(client); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(client), req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// startInBubble starts the daemon on a memListener; call it inside
// synctest.Test, after startSignalLoop.
func (e *env) startInBubble(opts ...fstaid.Option) (*running, *memListener) {
	e.t.Helper()
	l := newMemListener()
	listen := func(string, string) (net.Listener, error) { return l, nil }
	return e.startDaemon(&daemon{extraOpts: opts, listen: listen}), l
}

// startSignalLoop starts os/signal's delivery goroutine, which the first
// signal.Notify starts, outside any synctest bubble: started by the
// daemon's SIGHUP handler inside one, that goroutine would keep the
// bubble's clock still, and outlive it.
var startSignalLoop = sync.OnceFunc(func() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGWINCH)
	signal.Stop(c)
})
