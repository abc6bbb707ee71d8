package fstaid_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fstaid/fstaid"
)

// A target that dies after a while: the monitor notices, takes the lock,
// runs the handler once and stops.
func Example() {
	var healthy atomic.Bool
	healthy.Store(true)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()

	dir, _ := os.MkdirTemp("", "fstaid-example")
	defer os.RemoveAll(dir)

	m, err := fstaid.New(
		fstaid.WithTarget("web1"),
		fstaid.WithPrimary(fstaid.HTTP(target.URL), time.Second),
		fstaid.WithMaxAttempts(3),
		fstaid.WithInterval(10*time.Millisecond),
		fstaid.WithHandler("move-ip", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			fmt.Println("handler:", ev.Reason, strings.Join(ev.Args(), " "), "HTTP", ev.Primary.HTTPStatus)
			return nil
		}), time.Minute),
		fstaid.WithLock(fstaid.NewFileLock(filepath.Join(dir, "fstaid.lock"))),
		fstaid.WithLogger(nil),
		fstaid.WithObserver(func(n fstaid.Notice) {
			if n.Kind == fstaid.NoticeArmed {
				healthy.Store(false) // the target dies once we watch it
			}
		}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = m.Run(context.Background())
	var fe *fstaid.FailoverError
	if errors.As(err, &fe) {
		fmt.Println("failed over:", fe.Record.State, "handlers:", len(fe.Record.Handlers))
	}
	// Output:
	// handler: auto 1 false -1 false HTTP 503
	// failed over: done handlers: 1
}

// Run refuses to start while a failover record exists: a human re-arms.
func ExampleMonitor_Run_locked() {
	dir, _ := os.MkdirTemp("", "fstaid-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "fstaid.8080.lock")
	os.WriteFile(path, nil, 0o644) // what the original fstaid leaves behind

	m, _ := fstaid.New(
		fstaid.WithPrimary(fstaid.TCP("127.0.0.1:1"), time.Second),
		fstaid.WithHandler("notify", fstaid.Script("/usr/libexec/fstaid/handler.rb"), time.Minute),
		fstaid.WithLock(fstaid.NewFileLock(path)),
		fstaid.WithLogger(nil),
	)
	err := m.Run(context.Background())
	fmt.Println(errors.Is(err, fstaid.ErrLocked), m.Status().State)
	// Output: true locked
}

// Fail fails over by hand, without checks; a second call learns that it
// already happened.
func ExampleMonitor_Fail() {
	dir, _ := os.MkdirTemp("", "fstaid-example")
	defer os.RemoveAll(dir)
	m, _ := fstaid.New(
		fstaid.WithPrimary(fstaid.TCP("127.0.0.1:1"), time.Second),
		fstaid.WithHandler("notify", fstaid.HandlerFunc(func(ctx context.Context, ev *fstaid.Event) error {
			fmt.Println("handler:", ev.Reason, strings.Join(ev.Args(), " "), ev.RequestedBy)
			return nil
		}), time.Minute),
		fstaid.WithLock(fstaid.NewFileLock(filepath.Join(dir, "fstaid.lock"))),
		fstaid.WithLogger(nil),
	)
	rec, err := m.Fail(context.Background(), fstaid.WithExitCode(2), fstaid.WithRequestedBy("alice"),
		fstaid.WithComment("planned: db1 maintenance"))
	fmt.Println(rec.State, rec.Comment, err)
	_, err = m.Fail(context.Background())
	fmt.Println(errors.Is(err, fstaid.ErrLocked))
	// Output:
	// handler: manual 2 false 2 false alice
	// done planned: db1 maintenance <nil>
	// true
}

// A secondary check through a bastion's HTTP proxy, as
// `curl -x bastion:8080 http://target/` does.
func ExampleHTTPCheck_proxy() {
	check := fstaid.HTTP("http://10.0.1.10/health")
	check.Proxy = &url.URL{Scheme: "http", Host: "bastion:8080"}
	_ = fstaid.WithSecondary(check, 3*time.Second)
}

// Start unarmed and wait for a broken target to recover instead of
// returning an error; Fail still works meanwhile.
func ExampleWithStartupCheck() {
	_ = fstaid.WithStartupCheck(fstaid.StartupCheckWait)
}

// The interval runs start to start: a 300 ms round with a 1 s interval
// starts every second.
func ExampleWithInterval() {
	_ = fstaid.WithInterval(time.Second)
}

// Every state transition goes to a notifier, here a function; in
// production NotifyScript runs a keepalived-style notify command. The
// queue is closed after Run, so that the last transition is delivered.
func ExampleWithNotifications() {
	dir, _ := os.MkdirTemp("", "fstaid-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := fstaid.NewNotifications(fstaid.NotifierFunc(func(_ context.Context, t *fstaid.Transition) error {
		fmt.Println(strings.Join(t.Args(), " "), "from", t.From)
		if t.Kind == fstaid.TransitionArmed {
			cancel() // the example stops once armed
		}
		return nil
	}), 10*time.Second, nil)
	m, _ := fstaid.New(
		fstaid.WithTarget("db1"),
		fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return nil }), time.Second),
		fstaid.WithHandler("move-ip", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), time.Minute),
		fstaid.WithLock(fstaid.NewFileLock(filepath.Join(dir, "fstaid.lock"))),
		fstaid.WithLogger(nil),
		fstaid.WithNotifications(q),
	)
	m.Run(ctx)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelClose()
	q.Close(closeCtx)
	// Output:
	// INSTANCE db1 armed from starting
	// INSTANCE db1 stopped from armed
}
