package etcd_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// Three monitors on three hosts watch one target; each runs this with its
// own monitor_id. The first to decide takes the record in etcd and runs
// the handler; the others find the record and stop. With quorum = 2, the
// target must look dead from two monitors before anyone fails over.
func Example() {
	cfg := &etcd.Config{
		Endpoints: []string{"https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"},
		Prefix:    "/fstaid/db1",
		CAFile:    "/etc/fstaidd/etcd-ca.pem",
		MonitorID: "mon-a",
		Quorum:    2,
	}
	store, err := etcd.Open(cfg, slog.Default())
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // after Run: withdraws the verdict; the record stays

	verdicts := store.Votes()
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.TCP("db1:5432"), 3*time.Second),
		fstaid.WithSecondary(verdicts.Quorum(cfg.Quorum), 5*time.Second),
		fstaid.WithObserver(verdicts.Observer()),
		fstaid.WithHandler("move-ip", fstaid.Script("/usr/local/bin/move-ip"), time.Minute),
		fstaid.WithLock(store.Lock()),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = m.Run(context.Background())
	switch {
	case errors.Is(err, fstaid.ErrLocked):
		log.Print("another monitor failed over (or a record is left): ", err)
	case errors.Is(err, fstaid.ErrLockUnavailable):
		log.Print("etcd unreachable: not monitoring (fail closed): ", err)
	}
}

// `fstaidd status` and `fstaidd unlock`: show the record, its holder and
// every verdict, then remove exactly the record that was shown.
func ExampleLock_Remove() {
	store, err := etcd.Open(&etcd.Config{Endpoints: []string{"https://etcd1:2379"}, Prefix: "/fstaid/db1"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	st, err := store.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range st.Votes {
		log.Printf("%s: %s at %s", v.Monitor, v.Value, v.Time.Format(time.RFC3339))
	}
	if st.Record == nil {
		return
	}
	if st.Interrupted {
		log.Print("the failover was interrupted: its holder died while the handlers ran")
	}
	// ... ask the operator to confirm ...
	if err := store.Lock().Remove(ctx, st.Record); errors.Is(err, fstaid.ErrRecordChanged) {
		log.Print("a newer failover happened meanwhile; not removed")
	}
}
