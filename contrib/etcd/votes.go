package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fstaid/fstaid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Vote values.
const (
	VoteAlive = "alive"
	VoteDead  = "dead"
)

// Vote is one monitor's view of the target, the value of
// <prefix>/verdicts/<monitor>.
type Vote struct {
	Monitor string `json:"monitor"`
	// Value is VoteAlive or VoteDead (JSON "verdict", as every version
	// writes it: monitors of several versions count each other's votes).
	Value string `json:"verdict"`
	// Time is when the monitor published it, by its own clock (shown,
	// never used to judge freshness: the lease does that, by etcd's).
	Time   time.Time `json:"time"`
	Host   string    `json:"host,omitempty"`
	Round  uint64    `json:"round,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// PID is the publishing process's, to tell two processes that share
	// one monitor ID apart.
	PID int `json:"pid,omitempty"`
	// Target and Config are the publisher's scope (WithVoteScope):
	// only votes matching the counting monitor's own count.
	Target string `json:"target,omitempty"`
	Config string `json:"config,omitempty"`
}

// ErrDuplicateMonitor reports that another live process publishes
// votes under this monitor's ID (cloned hosts keep one host name, the
// default ID): the two write one key, count as one monitor, and k may
// never be reached. errors.Is(err, ErrDuplicateMonitor) holds for a
// *DuplicateError.
var ErrDuplicateMonitor = errors.New("etcd: another live process publishes verdicts under this monitor ID")

// DuplicateError names the other process found writing this monitor's
// vote key.
type DuplicateError struct {
	Key     string
	Monitor string
	// Host and PID are what the other process's vote says.
	Host string
	PID  int
	// Lease is the other process's vote lease.
	Lease int64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("etcd: monitor ID %q is used by another live process too (host %q, pid %d, lease %x, key %s): both write one verdict key and count as one monitor; give each monitor its own [etcd] monitor_id",
		e.Monitor, e.Host, e.PID, e.Lease, e.Key)
}

// Is reports whether target is ErrDuplicateMonitor.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicateMonitor }

// Dead reports whether the vote is VoteDead.
func (v Vote) Dead() bool { return v.Value == VoteDead }

// Votes publishes this monitor's vote on the target and counts
// every monitor's, so that a failover can require k "dead" votes from
// distinct monitors (k-of-n): several vantage points instead of one
// secondary.
//
// A vote is bound to a lease of the vote TTL that only a
// successful write renews (the write first, the renewal after), so it
// counts for one TTL after it was last written, measured by etcd (no
// clock agreement between monitor hosts is needed); the vote of a
// monitor that died, hung or lost etcd vanishes by itself, and a write
// that fails (NOSPACE, a lost permission) revokes the lease, withdrawing
// the previous vote at once rather than letting it be counted on.
//
// Wiring, in every monitor of the target (each with its own monitor ID):
//
//	v := store.Votes()
//	m, err := fstaid.New(
//		fstaid.WithPrimary(check, timeout),
//		fstaid.WithSecondary(v.Quorum(k), quorumTimeout),
//		fstaid.WithObserver(v.Observer()),
//		fstaid.WithLock(store.Lock()),
//		...)
//
// The observer publishes each round's vote ("dead" when the primary
// failed every attempt, "alive" when it passed, withdrawn when the self
// check failed: an isolated monitor's view is worth nothing) without
// blocking the Monitor. The Quorum check, which an armed Monitor runs only
// after the primary failed, first publishes this monitor's "dead" vote,
// then counts.
//
// Its methods are safe for concurrent use.
type Votes struct {
	s *Store

	seq atomic.Uint64 // orders publications: a later one always wins

	wmu     sync.Mutex // serialises writes of our key; guards the fields below
	lease   clientv3.LeaseID
	written uint64 // seq of the last write
	lastRev int64  // the revision of our last write of the key, 0 before

	dmu sync.Mutex
	dup *DuplicateError // the last duplicate seen by a write, nil when none

	k atomic.Int64 // Quorum's k, once made; for Status

	armed    atomic.Bool // the Monitor is armed (from the observer)
	observed atomic.Bool // Observer was called

	mu      sync.Mutex // guards the publisher fields below
	pending *publication
	wake    chan struct{}
	stop    chan struct{}
	started bool
	closed  bool
	wg      sync.WaitGroup
}

// closedSeq marks Votes closed: nothing is written after it.
const closedSeq = ^uint64(0)

type publication struct {
	seq      uint64
	withdraw bool
	v        Vote
}

func newVotes(s *Store) *Votes {
	return &Votes{s: s, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Publish writes this monitor's vote now: dead or alive, with detail
// (why; may be empty). A later call always wins over an earlier one, even
// when they race. It fails with an error wrapping
// fstaid.ErrLockUnavailable when etcd cannot be reached or refuses the
// write; the previous vote is then withdrawn (its lease revoked, or
// left to expire when etcd cannot be reached), never renewed.
func (v *Votes) Publish(ctx context.Context, dead bool, detail string) error {
	return v.write(ctx, v.publication(dead, 0, detail))
}

func (v *Votes) publication(dead bool, round uint64, detail string) *publication {
	host, _ := os.Hostname()
	p := &publication{seq: v.seq.Add(1), v: Vote{
		Monitor: v.s.id, Value: VoteAlive, Time: time.Now(), Host: host, Round: round, Detail: detail,
		PID: os.Getpid(), Target: v.s.target, Config: v.s.digest,
	}}
	if dead {
		p.v.Value = VoteDead
	}
	return p
}

func (v *Votes) write(ctx context.Context, p *publication) error {
	ctx, cancel := v.s.withTimeout(ctx)
	defer cancel()
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if v.written == closedSeq {
		return errors.New("etcd: verdicts closed")
	}
	if p.seq <= v.written {
		return nil // a later publication was written first
	}
	key := v.s.voteKey()
	if p.withdraw {
		if _, err := v.s.client.Delete(ctx, key); err != nil {
			return v.s.unavailable("withdrawing the verdict", err)
		}
		v.written = p.seq
		return nil
	}
	val, err := json.Marshal(p.v)
	if err != nil {
		return err
	}
	// Write first, renew after: a lease renewed before a write that then
	// fails (NOSPACE, a slow disk, a lost permission) would keep the
	// previous vote counted, although this monitor may now see the
	// target otherwise. A put alone does not renew the lease; a fresh
	// lease needs no renewal.
	// A lease that expires between the write and the renewal (or before
	// the write) takes the vote with it: write again under a new one.
	for attempt := 0; ; attempt++ {
		fresh := false
		if v.lease == 0 {
			g, err := v.s.client.Grant(ctx, ttlSeconds(v.s.voteTTL))
			if err != nil {
				return v.s.unavailable("granting the verdict lease", err)
			}
			v.lease, fresh = g.ID, true
		}
		err := v.put(ctx, key, string(val))
		if err == nil && !fresh {
			_, err = v.s.client.KeepAliveOnce(ctx, v.lease)
			if err != nil && !leaseNotFound(err) {
				return v.s.unavailable("renewing the verdict lease", err)
			}
		}
		if err == nil {
			break
		}
		if leaseNotFound(err) && attempt == 0 {
			v.lease = 0 // it expired: take a new one
			continue
		}
		// The previous vote must not outlive this failure: revoke its
		// lease (if etcd cannot be reached, nobody renews it and it
		// expires within one TTL).
		v.revokeLocked(ctx)
		return v.s.unavailable("publishing the verdict", err)
	}
	v.written = p.seq
	return nil
}

// put writes our vote key bound to our lease, and finds out whether
// another process writes it too: the transaction writes only if the key
// is bound to our lease or does not exist, and otherwise reads it. A key
// bound to another lease is overwritten (a process that died leaves its
// vote until its lease expires), but if it was rewritten since our own
// last write, another live process publishes under our ID: that is
// recorded (Duplicate) and logged loudly. v.wmu is held.
func (v *Votes) put(ctx context.Context, key, val string) error {
	opPut := clientv3.OpPut(key, val, clientv3.WithLease(v.lease))
	resp, err := v.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", v.lease)).
		Then(opPut).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{opPut},
			[]clientv3.Op{clientv3.OpGet(key)})).
		Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		v.lastRev = resp.Header.Revision
		return nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.GetSucceeded() {
		v.lastRev = resp.Header.Revision
		return nil
	}
	var kvs []*mvccpb.KeyValue
	if rs := inner.GetResponses(); len(rs) > 0 {
		kvs = rs[0].GetResponseRange().GetKvs()
	}
	if len(kvs) > 0 && v.lastRev != 0 && kvs[0].ModRevision != v.lastRev {
		v.duplicate(key, kvs[0])
	}
	presp, err := v.s.client.Put(ctx, key, val, clientv3.WithLease(v.lease))
	if err != nil {
		return err
	}
	v.lastRev = presp.Header.Revision
	return nil
}

func (v *Votes) duplicate(key string, kv *mvccpb.KeyValue) {
	var other Vote
	json.Unmarshal(kv.Value, &other)
	d := &DuplicateError{Key: key, Monitor: v.s.id, Host: other.Host, PID: other.PID, Lease: kv.Lease}
	v.dmu.Lock()
	again := v.dup != nil && v.dup.Lease == d.Lease
	v.dup = d
	v.dmu.Unlock()
	if again {
		return // logged when first seen; Duplicate and Status keep showing it
	}
	v.s.logger.Error("etcd: DUPLICATE MONITOR ID: another live process writes this monitor's verdict key; the two count as one monitor and the quorum may never be reached",
		"event", "duplicate-monitor-id", "monitor_id", v.s.id, "other_host", other.Host, "other_pid", other.PID, "key", key)
}

// Duplicate returns the last *DuplicateError a publication found (another
// live process wrote this monitor's vote key after this one did), or
// nil when none was found.
func (v *Votes) Duplicate() error {
	v.dmu.Lock()
	defer v.dmu.Unlock()
	if v.dup == nil {
		return nil
	}
	return v.dup
}

// CheckUnique checks, before this monitor publishes its first vote,
// that no other live process publishes under its monitor ID: it returns
// a *DuplicateError (ErrDuplicateMonitor) if the vote key, bound to a
// lease not ours, is written twice more under one lease while it is
// watched (one late write is a dead process's last); nil if there is
// no such key, or it vanishes (its lease expires) or is not rewritten
// within what is left of its lease's TTL — a vote left by an earlier
// run of this monitor; and an error wrapping fstaid.ErrLockUnavailable
// when etcd cannot be read. A live publisher writes at least once per
// TTL (see MinVoteTTL), so the wait is at most two vote TTLs, and
// only when a key is there.
func (v *Votes) CheckUnique(ctx context.Context) error {
	key := v.s.voteKey()
	gctx, cancel := v.s.withTimeout(ctx)
	resp, err := v.s.client.Get(gctx, key)
	cancel()
	if err != nil {
		return v.s.unavailable("reading this monitor's verdict key", err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	kv := resp.Kvs[0]
	v.wmu.Lock()
	ours := kv.Lease != 0 && clientv3.LeaseID(kv.Lease) == v.lease
	v.wmu.Unlock()
	if ours {
		return nil
	}
	wait := v.s.voteTTL
	tctx, cancel := v.s.withTimeout(ctx)
	ttl, err := v.s.client.TimeToLive(tctx, clientv3.LeaseID(kv.Lease))
	cancel()
	if err == nil {
		if ttl.TTL <= 0 {
			return nil // the lease is gone: so is the key, now
		}
		wait = time.Duration(ttl.TTL+1) * time.Second // TTL is rounded down
	}
	// Two rewrites under one other lease, not one: a process that just
	// died (a restart after SIGKILL) may still have one write in flight,
	// committed after this watch began; a live publisher writes every
	// round, at least once per TTL, so the second comes within two.
	wctx, wcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 2*wait+time.Second)
	defer wcancel()
	rewrites := map[int64]int{}
	for wr := range v.s.client.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return v.s.unavailable("watching this monitor's verdict key", err)
		}
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
			if rewrites[ev.Kv.Lease]++; rewrites[ev.Kv.Lease] < 2 {
				continue
			}
			var other Vote
			json.Unmarshal(ev.Kv.Value, &other)
			return &DuplicateError{Key: key, Monitor: v.s.id, Host: other.Host, PID: other.PID, Lease: ev.Kv.Lease}
		}
	}
	if ctx.Err() != nil {
		return v.s.unavailable("watching this monitor's verdict key", ctx.Err())
	}
	return nil
}

// Live counts the monitors that have a fresh vote matching this
// monitor's scope (WithVoteScope), this monitor's included, and
// returns their IDs, and those whose votes do not match.
func (v *Votes) Live(ctx context.Context) (live, mismatched []string, err error) {
	list, err := v.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, vd := range list {
		if v.matches(vd) {
			live = append(live, vd.Monitor)
		} else {
			mismatched = append(mismatched, vd.Monitor)
		}
	}
	return live, mismatched, nil
}

// matches reports whether vd is about what this monitor watches.
func (v *Votes) matches(vd Vote) bool {
	return vd.Target == v.s.target && vd.Config == v.s.digest
}

// revokeLocked revokes the vote lease, withdrawing the vote at once,
// and forgets it. Best effort: a lease that cannot be revoked expires by
// itself, since only a successful write renews it. v.wmu is held.
func (v *Votes) revokeLocked(ctx context.Context) {
	if v.lease == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.s.timeout)
	defer cancel()
	if _, err := v.s.client.Revoke(rctx, v.lease); err != nil && !leaseNotFound(err) {
		v.s.logger.Warn("etcd: cannot revoke the verdict lease after a failed write; the old verdict expires with it", "error", err)
	}
	v.lease = 0
}

func leaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), rpctypes.ErrLeaseNotFound.Error())
}

// Probe checks, without changing anything, that etcd has a quorum and
// that the credentials may write this monitor's vote key and read the
// others' (see Lock.Probe for how).
func (v *Votes) Probe(ctx context.Context) error {
	ctx, cancel := v.s.withTimeout(ctx)
	defer cancel()
	_, err := v.s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(v.s.voteKey()), "<", 0)).
		Then(clientv3.OpPut(v.s.voteKey(), "")).
		Else(clientv3.OpGet(v.s.voteDir(), clientv3.WithPrefix(), clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return v.s.unavailable("probing the verdicts", err)
	}
	return nil
}

// List returns every fresh vote (those whose lease is alive), in key
// order.
func (v *Votes) List(ctx context.Context) ([]Vote, error) {
	ctx, cancel := v.s.withTimeout(ctx)
	defer cancel()
	resp, err := v.s.client.Get(ctx, v.s.voteDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, v.s.unavailable("reading the verdicts", err)
	}
	return decodeVotes(resp.Kvs, v.s.voteDir()), nil
}

func decodeVotes(kvs []*mvccpb.KeyValue, dir string) []Vote {
	out := make([]Vote, 0, len(kvs))
	for _, kv := range kvs {
		var vd Vote
		if json.Unmarshal(kv.Value, &vd) != nil {
			vd = Vote{Value: "unreadable"}
		}
		// The key names the monitor; a value cannot claim another's.
		vd.Monitor = strings.TrimPrefix(string(kv.Key), dir)
		out = append(out, vd)
	}
	return out
}

// Observer returns a function for fstaid.WithObserver that publishes the
// vote of every round in the background (it never blocks the
// Monitor; a failed publication is logged, and the vote then expires
// with its lease), withdraws the vote when Run stops, and tells the
// Quorum check whether the Monitor is armed.
//
// A round's vote: withdrawn when a self check failed; otherwise
// "dead" when the primary check failed (every attempt), "alive" when it
// passed.
func (v *Votes) Observer() func(fstaid.Notice) {
	v.observed.Store(true)
	v.start()
	return func(n fstaid.Notice) {
		switch n.Kind {
		case fstaid.NoticeArmed:
			v.armed.Store(true)
		case fstaid.NoticeStarted, fstaid.NoticeUnarmed, fstaid.NoticeLocked:
			v.armed.Store(false)
		case fstaid.NoticeStopped:
			v.armed.Store(false)
			v.enqueue(&publication{seq: v.seq.Add(1), withdraw: true})
			return
		}
		r := n.Round
		if r == nil {
			return
		}
		switch {
		case r.Self.Failed() || r.SelfAfter.Failed():
			v.enqueue(&publication{seq: v.seq.Add(1), withdraw: true})
		case r.Primary != nil:
			detail := ""
			if !r.Primary.Passed {
				detail = r.Primary.Error
			}
			p := v.publication(!r.Primary.Passed, r.Number, detail)
			p.v.Time = r.Start.Add(r.Duration)
			v.enqueue(p)
		}
	}
}

func (v *Votes) start() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.started || v.closed {
		return
	}
	v.started = true
	v.wg.Add(1)
	go v.publisher()
}

func (v *Votes) enqueue(p *publication) {
	v.mu.Lock()
	v.pending = p // the latest wins
	v.mu.Unlock()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

func (v *Votes) publisher() {
	defer v.wg.Done()
	for {
		select {
		case <-v.stop:
			return
		case <-v.wake:
		}
		v.mu.Lock()
		p := v.pending
		v.pending = nil
		v.mu.Unlock()
		if p == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), v.s.timeout)
		go func() {
			select {
			case <-v.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := v.write(ctx, p); err != nil {
			v.s.logger.Warn("etcd: publishing this monitor's verdict failed; it expires with its lease", "error", err)
		}
		cancel()
	}
}

// Close stops the background publisher and revokes the vote lease,
// which withdraws this monitor's vote at once. Close is idempotent.
func (v *Votes) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	close(v.stop)
	v.mu.Unlock()
	v.wg.Wait()

	v.wmu.Lock()
	defer v.wmu.Unlock()
	v.written = closedSeq // nothing may write after Close
	if v.lease == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := v.s.client.Revoke(ctx, v.lease); err != nil {
		return fmt.Errorf("etcd: revoking the verdict lease (the verdict expires by itself): %w", err)
	}
	return nil
}

// Quorum is a fstaid.Check that confirms the target dead only when at
// least K monitors, counted by their fresh "dead" votes, agree. Use it
// as the secondary check (see Votes). Check returns:
//   - an error ("dead confirmed": the check failed, the failover may go
//     on) when at least K distinct monitors have a fresh "dead" vote;
//   - nil (a veto: no failover) otherwise, including when etcd cannot be
//     read: what cannot be confirmed is not confirmed.
//
// When the Monitor is armed (known from Votes.Observer), Check first
// publishes this monitor's own "dead" vote: an armed Monitor runs the
// secondary check only after the primary failed every attempt. During the
// start-up check it only counts. To keep a slow etcd from turning into a
// timed-out — that is, failed — check, Check gives up and vetoes a little
// before its context's deadline (a quarter of the time left, at most a
// second).
type Quorum struct {
	v *Votes
	// K is how many "dead" votes, this monitor's included, confirm.
	K int
}

var _ fstaid.Check = (*Quorum)(nil)

// Quorum returns the check requiring k "dead" votes. k must be at
// least 1 (1 means this monitor alone decides, like no secondary); it
// panics otherwise, as a programming error.
func (v *Votes) Quorum(k int) *Quorum {
	if k < 1 {
		panic(fmt.Sprintf("etcd: Quorum(%d): k must be at least 1", k))
	}
	v.k.Store(int64(k))
	return &Quorum{v: v, K: k}
}

// String describes the check.
func (q *Quorum) String() string {
	return fmt.Sprintf("%d dead verdicts under %s", q.K, q.v.s.describe())
}

// Check publishes (when armed) and counts the votes; see Quorum.
func (q *Quorum) Check(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/4, time.Second)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	log := q.v.s.logger
	if !q.v.observed.Load() {
		log.Warn("etcd: Votes.Observer is not wired to the Monitor: this monitor publishes no verdict of its own")
	}
	if q.v.armed.Load() {
		if err := q.v.Publish(ctx, true, "primary check failed"); err != nil {
			log.Error("etcd: cannot publish this monitor's dead verdict; vetoing the failover", "error", err)
			return nil
		}
	}
	list, err := q.v.List(ctx)
	if err != nil {
		log.Error("etcd: cannot read the verdicts; vetoing the failover", "error", err)
		return nil
	}
	var dead, alive, mismatched []string
	for _, vd := range list {
		switch {
		case !q.v.matches(vd):
			mismatched = append(mismatched, vd.Monitor)
		case vd.Dead():
			dead = append(dead, vd.Monitor)
		default:
			alive = append(alive, vd.Monitor)
		}
	}
	if len(mismatched) > 0 {
		log.Warn("etcd: ignoring verdicts about another target or configuration (their target or config digest differs from this monitor's)",
			"monitors", mismatched, "target", q.v.s.target, "config", q.v.s.digest)
	}
	if err := q.v.Duplicate(); err != nil {
		log.Error("etcd: counting verdicts while another live process shares this monitor's ID", "error", err)
	}
	if len(dead) >= q.K {
		return fmt.Errorf("etcd: target dead, confirmed by %d of %d required monitors (%s)", len(dead), q.K, strings.Join(dead, ", "))
	}
	level := slog.LevelDebug // the start-up check: nothing to veto
	if q.v.armed.Load() {
		level = slog.LevelWarn
	}
	if live := len(dead) + len(alive); live < q.K {
		log.Log(ctx, level, "etcd: fewer live monitors than the quorum: the target can never be confirmed dead until more publish",
			"live", live, "required", q.K, "dead", dead, "alive", alive)
		return nil
	}
	log.Log(ctx, level, "etcd: not enough monitors see the target dead: vetoing the failover",
		"dead", dead, "alive", alive, "required", q.K)
	return nil
}
