package etcd

import (
	"context"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Exports for tests only.

// Client returns the etcd client, to write keys behind the Store's back.
func (s *Store) Client() *clientv3.Client { return s.client }

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
