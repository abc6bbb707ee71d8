package etcd

import (
	"context"
	"time"

	"github.com/fstaid/fstaid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchRetry is the pause before watching again after etcd failed a read.
const watchRetry = 500 * time.Millisecond

// Watch implements fstaid.LockWatcher: the channel receives the record
// once one exists under the key (already, or created later by any
// monitor), then is closed; it is closed too when ctx ends or the Store
// is closed. An unreachable etcd only delays it: the watch starts again
// from a fresh read. The Monitor stops on it, so that a monitor whose own
// rounds never decide (outvoted by the quorum) does not go on watching a
// target that another monitor has failed over.
func (l *Lock) Watch(ctx context.Context) <-chan *fstaid.Record {
	ch := make(chan *fstaid.Record, 1) // one send at most: never blocks
	go func() {
		defer close(ch)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-l.s.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		if rec := l.s.awaitRecord(ctx); rec != nil {
			ch <- rec
		}
	}()
	return ch
}

// awaitRecord returns the record as soon as one exists, or nil when ctx
// ends or the client is closed.
func (s *Store) awaitRecord(ctx context.Context) *fstaid.Record {
	key := s.recordKey()
	for ctx.Err() == nil && s.client.Ctx().Err() == nil {
		gctx, cancel := s.withTimeout(ctx)
		resp, err := s.client.Get(gctx, key)
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(watchRetry):
			}
			continue
		}
		if len(resp.Kvs) > 0 {
			return decodeRecord(resp.Kvs[0].Value)
		}
		// From the revision just read, so nothing falls between the read
		// and the watch. WithRequireLeader ends the watch when its member
		// loses the cluster, instead of leaving it silent on the wrong
		// side of a partition; a fresh read follows.
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range s.client.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterDelete()) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					wcancel()
					return decodeRecord(ev.Kv.Value)
				}
			}
		}
		wcancel()
	}
	return nil
}
