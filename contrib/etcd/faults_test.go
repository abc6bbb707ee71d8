package etcd

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fault modes of a fault's calls to one gRPC method.
const (
	faultNone      int32 = iota
	faultUnsent          // fail before the request leaves: etcd never sees it
	faultLostReply       // send it, let etcd apply it, lose the answer
	faultRefused         // send nothing, answer as etcd's permission check would
	faultNoSpace         // send nothing, answer as etcd with the NOSPACE alarm would
	faultSignal          // no fault: send on returned once the call returned
)

// fault injects failures into a real client's calls to one gRPC method
// (e.g. "/etcdserverpb.KV/Txn"), between the caller and the real etcd:
// the request really reaches etcd unless the mode says otherwise.
type fault struct {
	method string
	mode   atomic.Int32
	calls  atomic.Int32 // calls that met a fault
	// returned, for faultSignal, gets a value (if it has room) each time
	// a call returned: a test waits on it for "the call has happened".
	returned chan struct{}
}

func (f *fault) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method != f.method {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	switch f.mode.Load() {
	case faultUnsent:
		f.calls.Add(1)
		return status.Error(codes.Unavailable, "test: connection reset before the request was sent")
	case faultLostReply:
		f.calls.Add(1)
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "test: connection reset, the answer was lost")
	case faultRefused:
		f.calls.Add(1)
		return rpctypes.ErrGRPCPermissionDenied
	case faultNoSpace:
		f.calls.Add(1)
		return rpctypes.ErrGRPCNoSpace
	case faultSignal:
		err := invoker(ctx, method, req, reply, cc, opts...)
		select {
		case f.returned <- struct{}{}:
		default:
		}
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// newFaultyStore is newStore on a client whose calls to f.method go
// through f.
func newFaultyStore(t testing.TB, prefix, id string, eps []string, f *fault, opts ...Option) *Store {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(f.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := NewStore(c, prefix, append([]Option{WithMonitorID(id), WithTimeout(3 * time.Second), WithLogger(nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
