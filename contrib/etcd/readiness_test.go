package etcd

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fstaid/fstaid"
)

// A Monitor on the etcd lock with readiness finds out, between rounds,
// that its credentials may no longer write the record: an operator
// narrowed the role to read-only. Restoring the permission makes it
// ready again. (The lock needs no ReadinessCheck of its own: the
// Monitor's pre-flight reads the record and probes the keys.)
func TestReadinessFindsAWriteRevoked(t *testing.T) {
	srv := startEtcd(t)
	admin := newClient(t, endpoints(srv)...)
	ctx := ctxTimeout(t, 30*time.Second)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.UserAdd(ctx, "root", "rootpw"))
	must(admin.UserGrantRole(ctx, "root", "root"))
	must(admin.UserAdd(ctx, "mon", "monpw"))
	must(admin.RoleAdd(ctx, "mon"))
	grant := func(c *clientv3.Client, perm clientv3.PermissionType) {
		t.Helper()
		must(c.RoleGrantPermission(ctx, "mon", "/ready/", clientv3.GetPrefixRangeEnd("/ready/"), perm))
	}
	grant(admin, clientv3.PermissionType(clientv3.PermReadWrite))
	must(admin.UserGrantRole(ctx, "mon", "mon"))
	must(admin.AuthEnable(ctx))
	rootc, err := clientv3.New(clientv3.Config{Endpoints: endpoints(srv), Username: "root", Password: "rootpw", DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rootc.Close()

	s, err := Open(&Config{Endpoints: endpoints(srv), Prefix: "/ready", Username: "mon", Password: "monpw", DialTimeout: 10 * time.Second}, nil, WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := fstaid.New(fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return nil }), time.Second),
		fstaid.WithInterval(100*time.Millisecond), fstaid.WithHandler("h", fstaid.HandlerFunc(func(context.Context, *fstaid.Event) error { return nil }), time.Second),
		fstaid.WithLock(s.Lock()), fstaid.WithReadiness(300*time.Millisecond), fstaid.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	defer func() { cancel(); <-done }()

	waitReadiness := func(what string, since time.Time, ok func(*fstaid.Readiness) bool) *fstaid.Readiness {
		t.Helper()
		var rd *fstaid.Readiness
		eventually(t, 10*time.Second, what, func() bool {
			rd = m.Status().Readiness
			return rd != nil && rd.Checked.After(since) && ok(rd)
		})
		return rd
	}
	rd := waitReadiness("ready", time.Time{}, func(rd *fstaid.Readiness) bool { return rd.Ready })

	must(rootc.RoleRevokePermission(ctx, "mon", "/ready/", clientv3.GetPrefixRangeEnd("/ready/")))
	grant(rootc, clientv3.PermissionType(clientv3.PermRead))
	rd = waitReadiness("not ready", rd.Checked, func(rd *fstaid.Readiness) bool { return !rd.Ready })
	if len(rd.Problems) != 1 || rd.Problems[0].Kind != fstaid.ProblemLock || rd.Problems[0].Resource != s.Lock().String() ||
		!strings.Contains(rd.Problems[0].Message, "permission denied") {
		t.Fatalf("readiness %+v, want the lock %s not writable (permission denied)", rd, s.Lock())
	}
	grant(rootc, clientv3.PermissionType(clientv3.PermReadWrite))
	waitReadiness("ready again", rd.Checked, func(rd *fstaid.Readiness) bool { return rd.Ready })
}
