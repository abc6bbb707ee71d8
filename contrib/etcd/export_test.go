package etcd

import (
	"context"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Exports for tests only.

// Client returns the etcd client, to write keys behind the Store's back.
func (s *Store) Client() *clientv3.Client { return s.client }

// Key returns the record's key.
func (l *Lock) Key() string { return l.s.recordKey() }

// Prefix returns the key prefix, without a trailing "/".
func (s *Store) Prefix() string { return s.prefix }

// Withdraw removes this monitor's vote now, so that it counts neither
// way (the Observer withdraws it when Run stops).
func (v *Votes) Withdraw(ctx context.Context) error {
	return v.write(ctx, &publication{seq: v.seq.Add(1), withdraw: true})
}

// Fallen reports whether Acquire took the local lock.
func (f *FallbackLock) Fallen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held != nil && f.held == f.local
}

// Unlock removes the record and its holder key whatever they hold, and
// returns the record it removed (nil, nil when there was none): a test's
// shortcut for what a human does through Lock.Remove.
func (s *Store) Unlock(ctx context.Context) (*fstaid.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpDelete(s.recordKey(), clientv3.WithPrevKV()),
		clientv3.OpDelete(s.holderKey()),
	).Commit()
	if err != nil {
		return nil, s.unavailable("removing the record", err)
	}
	prev := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prev) == 0 {
		return nil, nil
	}
	return decodeRecord(prev[0].Value), nil
}
