package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lock is a fstaid.Lock kept in etcd, shared by every monitor of one
// target: the failover record is the key <prefix>/record.
//
// Acquire creates the record with a transaction that succeeds only if the
// key has never been created since it was last deleted (CreateRevision ==
// 0), so exactly one of any number of racing monitors wins, whatever host
// it runs on. The record has no lease: it stays until a human removes it
// (Remove), even if its writer is SIGKILLed or its host vanishes while
// a handler runs. (A concurrency.Mutex key would die with its holder's lease and
// let a second monitor fail over again.)
//
// Liveness is kept apart from the record: in the same transaction the
// winner writes <prefix>/holder bound to a lease of its own (the holder
// TTL) and keeps that lease alive. Done is closed when that lease is lost
// (see Done); Status reports a record in state failing-over whose holder
// is gone as interrupted.
//
// Lock fails closed: when etcd cannot be reached, Acquire returns an error
// wrapping fstaid.ErrLockUnavailable and the Monitor runs no handler.
// Failing open (failing over without the lock) is not what Lock does:
// with several monitors it means several failovers; FallbackLock offers
// it as an explicit choice, and only while etcd is unreachable.
//
// A Lock belongs to one Monitor: its methods are safe for concurrent use,
// but only one Acquire per Lock can succeed.
type Lock struct {
	s *Store

	mu        sync.Mutex
	owned     bool
	createRev int64 // the record's CreateRevision, once owned
	// unconfirmed holds the values of creations whose answer was lost:
	// any of them may have committed, and is then ours.
	unconfirmed [][]byte
	lease       clientv3.LeaseID
	stop        context.CancelFunc // stops the holder keep-alive
	wg          sync.WaitGroup
	done        chan struct{} // closed when the holder lease is lost
	closed      bool
}

var (
	_ fstaid.Lock        = (*Lock)(nil)
	_ fstaid.LockProber  = (*Lock)(nil)
	_ fstaid.LockRemover = (*Lock)(nil)
)

// Holder is the value of <prefix>/holder: who took the lock. The key is
// bound to the holder's lease, so it exists only while the holder lives
// and reaches etcd.
type Holder struct {
	Monitor string    `json:"monitor"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Since   time.Time `json:"since"`
	// Lease is the holder's lease ID (etcdctl lease timetolive <hex>).
	Lease int64 `json:"lease"`
}

// String describes the lock: its key and the endpoints, for messages.
func (l *Lock) String() string {
	return fmt.Sprintf("etcd key %q at %s", l.s.recordKey(), strings.Join(l.s.client.Endpoints(), ","))
}

// Load returns the record: (nil, nil) when the key does not exist,
// (rec, nil) when it does — a value that is not a record we can read
// (empty, not JSON, no state) is a Legacy record, still locked — and
// (nil, err) wrapping fstaid.ErrLockUnavailable when etcd cannot answer.
// The read is linearizable: a record written anywhere before Load began is
// seen.
func (l *Lock) Load(ctx context.Context) (*fstaid.Record, error) {
	ctx, cancel := l.s.withTimeout(ctx)
	defer cancel()
	resp, err := l.s.client.Get(ctx, l.s.recordKey())
	if err != nil {
		return nil, l.s.unavailable("reading the record", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return decodeRecord(resp.Kvs[0].Value), nil
}

func decodeRecord(data []byte) *fstaid.Record {
	var rec fstaid.Record
	if len(data) == 0 || json.Unmarshal(data, &rec) != nil || rec.State == "" {
		return &fstaid.Record{Legacy: true}
	}
	return &rec
}

// Acquire creates the record only if the key does not exist, and with it
// the lease-bound holder key. Results:
//   - nil: this Lock owns the record; Done now watches the holder lease;
//   - *fstaid.LockedError (errors.Is(err, fstaid.ErrLocked)): a record
//     exists; it carries that record and nothing was changed;
//   - an error wrapping fstaid.ErrLockUnavailable (and ErrUnreachable
//     or ErrRefused, see UnavailableError): etcd could not be reached or
//     refused (permissions) before ctx ended; no handler may run. The
//     creation may still have committed (its answer lost): a later
//     Acquire recognises the record as its own and succeeds — by its ID
//     when rec.ID is set (any record carrying that ID is this attempt's,
//     see fstaid.Record.ID), else by its exact bytes on this Lock — and
//     binds a fresh holder key to it; any other Lock sees it as locked.
//     If nobody calls Acquire again, the record stays, failing-over with
//     no holder (Status.Interrupted), and no handler has run: the safe
//     side.
//
// Each etcd call is bounded by the Store's timeout (WithTimeout).
func (l *Lock) Acquire(ctx context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("etcd: lock closed")
	}
	if l.owned {
		return errors.New("etcd: lock already acquired by this Lock")
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("etcd: encoding the record: %w", err)
	}
	ctx, cancel := l.s.withTimeout(ctx)
	defer cancel()

	// The lease is for liveness only; the record never carries it.
	grant, err := l.s.client.Grant(ctx, ttlSeconds(l.s.holderTTL))
	if err != nil {
		return l.s.unavailable("granting the holder lease", err)
	}
	lease := grant.ID
	revoke := func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		l.s.client.Revoke(rctx, lease)
		rcancel()
	}
	host, _ := os.Hostname()
	holder, _ := json.Marshal(Holder{Monitor: l.s.id, Host: host, PID: os.Getpid(), Since: time.Now(), Lease: int64(lease)})

	key := l.s.recordKey()
	resp, err := l.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val)), clientv3.OpPut(l.s.holderKey(), string(holder), clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		revoke()
		if rec.ID == "" && len(l.unconfirmed) < maxUnconfirmed {
			l.unconfirmed = append(l.unconfirmed, val)
		}
		return l.s.unavailable("creating the record", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			// Impossible within one transaction; be safe: locked.
			revoke()
			return &fstaid.LockedError{Lock: l.String(), Record: &fstaid.Record{Legacy: true}}
		}
		if !l.ours(kvs[0].Value, val, rec.ID) {
			revoke()
			return &fstaid.LockedError{Lock: l.String(), Record: decodeRecord(kvs[0].Value)}
		}
		// Our own creation, whose answer was lost (a retry of the client,
		// or an earlier Acquire that returned an error): the record is
		// ours and no handler has run. Its holder key may be gone with the
		// lease revoked then; bind a new one to this lease.
		rev := kvs[0].CreateRevision
		hresp, err := l.s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
			Then(clientv3.OpPut(l.s.holderKey(), string(holder), clientv3.WithLease(lease))).
			Commit()
		if err != nil || !hresp.Succeeded {
			revoke()
			if err == nil {
				err = errors.New("the record changed meanwhile")
			}
			return l.s.unavailable("recording the holder of a record created earlier", err)
		}
		l.s.logger.Warn("etcd: an earlier creation of the failover record whose answer was lost did commit: this monitor holds the record", "key", key)
		l.createRev = rev
	} else {
		l.createRev = resp.Header.Revision
	}
	l.unconfirmed = nil
	l.owned = true
	l.lease = lease
	l.watchHolder(lease)
	return nil
}

// maxUnconfirmed bounds the creations remembered as possibly committed.
const maxUnconfirmed = 64

// ours reports whether value is a record this failover attempt created.
// A record with an ID is ours when the stored record carries the same ID
// (fstaid.Record.ID: one random nonce per attempt, kept for its retries,
// so any of them may have committed, however many were tried and
// whatever their time or event says). Without an ID it is ours when it
// is val, or one whose creation's answer was lost, byte for byte: each
// value holds its writer's host, PID and a nanosecond time, so another
// writer cannot match.
func (l *Lock) ours(value, val []byte, id string) bool {
	if id != "" {
		return decodeRecord(value).ID == id
	}
	if bytes.Equal(value, val) {
		return true
	}
	for _, u := range l.unconfirmed {
		if bytes.Equal(value, u) {
			return true
		}
	}
	return false
}

// watchHolder keeps the holder lease alive and closes done when it is
// lost. l.mu is held.
func (l *Lock) watchHolder(lease clientv3.LeaseID) {
	kctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	ch, err := l.s.client.KeepAlive(kctx, lease)
	if err != nil {
		// The lease cannot be kept: it is as good as lost.
		l.s.logger.Error("etcd: cannot keep the holder lease alive", "lease", fmt.Sprintf("%x", int64(lease)), "error", err)
		close(l.done)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for range ch {
		}
		if kctx.Err() == nil {
			l.s.logger.Error("etcd: holder lease lost: the failover record stays, but this monitor is no longer known to be alive", "lease", fmt.Sprintf("%x", int64(lease)), "key", l.s.holderKey())
			close(l.done)
		}
	}()
}

// Update replaces the record, only if it is still the one this Lock
// created: the transaction compares the key's CreateRevision with the
// revision Acquire created it at, so a record removed by Remove and taken
// by another monitor since is never overwritten. It fails without
// ownership, with a *fstaid.LockedError carrying the current record when
// the record is no longer ours, and with an error wrapping
// fstaid.ErrLockUnavailable when etcd cannot be reached.
func (l *Lock) Update(ctx context.Context, rec *fstaid.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.owned {
		return errors.New("etcd: updating a lock this Lock does not hold")
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("etcd: encoding the record: %w", err)
	}
	ctx, cancel := l.s.withTimeout(ctx)
	defer cancel()
	key := l.s.recordKey()
	resp, err := l.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", l.createRev)).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return l.s.unavailable("updating the record", err)
	}
	if !resp.Succeeded {
		var cur *fstaid.Record
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			cur = decodeRecord(kvs[0].Value)
		}
		l.owned = false
		return fmt.Errorf("etcd: the record this monitor created (revision %d) was removed: %w", l.createRev,
			&fstaid.LockedError{Lock: l.String(), Record: cur})
	}
	return nil
}

// Done returns a channel closed when the holder lease of an acquired lock
// is lost: no keep-alive answer reached this process for a whole holder
// TTL (etcd unreachable, or this process too slow to renew), or etcd
// reported the lease gone (it expired, or someone revoked it). Once lost,
// other monitors and Status no longer see this monitor as the live
// holder. The record itself is never lost: it has no lease, and no other
// monitor can take it. The Monitor marks the record LockLost when it
// sees the channel closed between handlers.
//
// The channel is never closed before Acquire succeeds, nor by Close.
func (l *Lock) Done() <-chan struct{} { return l.done }

// Remove removes the record only if it is rec, the one shown (see
// fstaid.LockRemover), and with it the holder key, re-arming every
// monitor of the target. It reads the record, compares it with rec
// (fstaid.Record.Equal; every Legacy value compares equal to a Legacy
// rec), and deletes both keys in a transaction that commits only if the
// record's key has not been written since that read (its ModRevision):
// what is removed is exactly what was compared. Results: nil when
// removed; an error wrapping fstaid.ErrRecordChanged when another
// record, or none, is there (nothing removed); an error wrapping
// fstaid.ErrLockUnavailable (see UnavailableError) when etcd cannot be
// reached or refuses. Each etcd call is bounded by the Store's timeout.
//
// Remove does not check the holder: removing a record that is still
// failing-over with a live holder (Status.Holder set) re-arms the other
// monitors while its handlers run; a tool should warn (fstaidd unlock
// does).
func (l *Lock) Remove(ctx context.Context, rec *fstaid.Record) error {
	if rec == nil {
		return errors.New("etcd: Remove needs the record shown (Load's)")
	}
	ctx, cancel := l.s.withTimeout(ctx)
	defer cancel()
	key := l.s.recordKey()
	resp, err := l.s.client.Get(ctx, key)
	if err != nil {
		return l.s.unavailable("reading the record", err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%w: %s holds no record now; nothing removed", fstaid.ErrRecordChanged, l)
	}
	kv := resp.Kvs[0]
	if cur := decodeRecord(kv.Value); !cur.Equal(rec) {
		return fmt.Errorf("%w: %s holds another record now (%s, state %s); nothing removed", fstaid.ErrRecordChanged, l, cur.Time.Format(time.RFC3339), cur.State)
	}
	tresp, err := l.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(l.s.holderKey())).
		Commit()
	if err != nil {
		return l.s.unavailable("removing the record", err)
	}
	if !tresp.Succeeded {
		return fmt.Errorf("%w: %s was written while it was compared; nothing removed", fstaid.ErrRecordChanged, l)
	}
	return nil
}

// Probe checks, without changing anything, that etcd has a quorum and
// that the credentials may write the record and holder keys: it commits a
// transaction whose condition can never hold (CreateRevision < 0) and
// whose success branch would write both keys — etcd checks permissions
// for both branches and commits the transaction through consensus.
// Probe is bounded by the Store's timeout (WithTimeout).
func (l *Lock) Probe(ctx context.Context) error {
	ctx, cancel := l.s.withTimeout(ctx)
	defer cancel()
	_, err := l.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.s.recordKey()), "<", 0)).
		Then(clientv3.OpPut(l.s.recordKey(), ""), clientv3.OpPut(l.s.holderKey(), "")).
		Commit()
	if err != nil {
		return l.s.unavailable("probing", err)
	}
	return nil
}

// Close stops keeping the holder lease alive and revokes it, so that the
// holder key disappears at once (the record stays). It does not close
// Done. Close is idempotent.
func (l *Lock) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	stop, lease := l.stop, l.lease
	l.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.s.client.Revoke(ctx, lease); err != nil {
		return fmt.Errorf("etcd: revoking the holder lease (it expires by itself): %w", err)
	}
	return nil
}

// ttlSeconds rounds a TTL up to whole seconds, the unit of etcd leases.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
