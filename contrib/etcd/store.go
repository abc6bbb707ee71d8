package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/hashicorp/go-multierror"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults, as NewStore sets them before applying options.
const (
	DefaultHolderTTL   = 10 * time.Second
	DefaultVoteTTL     = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Store is one target's space in etcd, under a prefix shared by every
// monitor of that target:
//
//	<prefix>/record              the failover record (no lease)
//	<prefix>/holder              who holds the record (holder lease)
//	<prefix>/verdicts/<monitor>  each monitor's vote (vote lease)
//
// Its methods are safe for concurrent use.
type Store struct {
	client     *clientv3.Client
	ownsClient bool
	prefix     string
	id         string
	holderTTL  time.Duration
	voteTTL    time.Duration
	ttlSet     bool   // WithVoteTTL was given
	target     string // WithVoteScope
	digest     string
	interval   time.Duration // WithRoundTiming, 0 when not given
	roundBound time.Duration
	timeout    time.Duration
	logger     *slog.Logger

	lock  *Lock
	votes *Votes

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{} // closed by Close: ends watches
}

// An Option configures a Store. Only this package makes Options.
type Option interface{ apply(*Store) }

type optionFunc func(*Store)

func (f optionFunc) apply(s *Store) { f(s) }

// WithMonitorID names this monitor in the holder key and its vote key.
// Default: the host name (which cloned hosts share). It must be unique
// among the monitors of one target — two live processes with one ID write
// one vote key and count as one monitor; Votes.CheckUnique and
// Votes.Duplicate find them — and must not contain "/".
func WithMonitorID(id string) Option { return optionFunc(func(s *Store) { s.id = id }) }

// WithHolderTTL sets the TTL of the lease that shows the lock's holder
// alive; Lock.Done closes once it is lost. Default 10s; etcd rounds it up
// to whole seconds and to its minimum lease TTL; zero or negative is an
// error.
func WithHolderTTL(d time.Duration) Option { return optionFunc(func(s *Store) { s.holderTTL = d }) }

// WithVoteTTL sets how long a published vote stays counted without
// being published again: the lease of the vote key. Monitors see each
// other's votes only if each vote lives from one publication to the
// next, so it must be at least MinVoteTTL(interval, round bound): with
// WithRoundTiming, a shorter TTL is an error. Default 10s, or
// MinVoteTTL when WithRoundTiming gives more; etcd rounds it up to
// whole seconds and to its minimum lease TTL; zero or negative is an
// error.
func WithVoteTTL(d time.Duration) Option {
	return optionFunc(func(s *Store) { s.voteTTL, s.ttlSet = d, true })
}

// WithRoundTiming tells the Store the Monitor's interval and the longest
// a round can take (fstaid.Monitor.RoundBound, or the same sum from the
// configuration), so that votes live from one round's publication to
// the next: the default vote TTL becomes the larger of 10s and
// MinVoteTTL(interval, roundBound), and NewStore refuses a
// WithVoteTTL below MinVoteTTL. Default: not given, no check.
// Negative values are an error.
func WithRoundTiming(interval, roundBound time.Duration) Option {
	return optionFunc(func(s *Store) { s.interval, s.roundBound = interval, roundBound })
}

// WithVoteScope says what this monitor's votes are about: the
// target's identity (a name, an address) and a digest of the settings
// that must agree between the monitors of one target (the primary check,
// k). Each vote carries both, and the Quorum check counts only
// votes whose target and digest equal its own, so a monitor watching
// another target, or configured otherwise, under the same prefix never
// confirms a failover; such votes are logged and shown as mismatched.
// Default: empty, and then only votes with an empty scope count.
func WithVoteScope(target, digest string) Option {
	return optionFunc(func(s *Store) { s.target, s.digest = target, digest })
}

// MinVoteTTL is the shortest vote TTL with which k-of-n can
// confirm: a monitor publishes at the end of each round and rounds start
// an interval apart, so two publications can be as far apart as interval
// + roundBound (a quick round followed by one that runs to its bound). A
// vote that expires sooner leaves gaps, and monitors whose rounds fall
// into each other's gaps never count each other's "dead": a dead target
// is never failed over. Rounded up to whole seconds, as etcd leases are.
func MinVoteTTL(interval, roundBound time.Duration) time.Duration {
	return time.Duration(ttlSeconds(interval+roundBound)) * time.Second
}

// WithTimeout bounds each etcd call (and dialling); a shorter deadline
// of the caller's context wins. Default 5s (DefaultDialTimeout); zero or
// negative is an error.
func WithTimeout(d time.Duration) Option { return optionFunc(func(s *Store) { s.timeout = d }) }

// WithLogger sets the logger. Default slog.Default(); nil discards logs.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(s *Store) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		s.logger = l
	})
}

// NewStore returns the Store under prefix, using client. The caller keeps
// ownership of client: Close does not close it. prefix must be non-empty
// (a trailing "/" is dropped); give each target its own prefix. Every
// problem in the options is reported at once.
func NewStore(client *clientv3.Client, prefix string, opts ...Option) (*Store, error) {
	host, _ := os.Hostname()
	s := &Store{
		client:    client,
		prefix:    strings.TrimRight(prefix, "/"),
		id:        host,
		holderTTL: DefaultHolderTTL,
		voteTTL:   DefaultVoteTTL,
		timeout:   DefaultDialTimeout,
		logger:    slog.Default(),
		closed:    make(chan struct{}),
	}
	for _, o := range opts {
		o.apply(s)
	}
	var errs *multierror.Error
	bad := func(format string, args ...any) { errs = multierror.Append(errs, fmt.Errorf("etcd: "+format, args...)) }
	if client == nil {
		bad("nil client")
	}
	if s.prefix == "" {
		bad("empty prefix")
	}
	if s.id == "" {
		bad("empty monitor ID")
	} else if strings.Contains(s.id, "/") {
		bad("monitor ID %q contains \"/\"", s.id)
	}
	if s.holderTTL <= 0 {
		bad("holder TTL must be positive, got %v", s.holderTTL)
	}
	if s.interval < 0 || s.roundBound < 0 {
		bad("round timing must not be negative, got interval %v, round bound %v", s.interval, s.roundBound)
	} else if s.interval > 0 || s.roundBound > 0 {
		floor := MinVoteTTL(s.interval, s.roundBound)
		switch {
		case !s.ttlSet:
			s.voteTTL = max(DefaultVoteTTL, floor)
		case s.voteTTL < floor:
			bad("verdict TTL %v is below interval %v + round bound %v (%v): monitors out of phase would never see each other's verdict", s.voteTTL, s.interval, s.roundBound, floor)
		}
	}
	if s.voteTTL <= 0 {
		bad("verdict TTL must be positive, got %v", s.voteTTL)
	}
	if s.timeout <= 0 {
		bad("timeout must be positive, got %v", s.timeout)
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	s.lock = &Lock{s: s, done: make(chan struct{})}
	s.votes = newVotes(s)
	return s, nil
}

// Lock returns the Store's failover lock, for fstaid.WithLock.
func (s *Store) Lock() *Lock { return s.lock }

// Votes returns this monitor's votes, for k-of-n confirmation.
func (s *Store) Votes() *Votes { return s.votes }

// VoteTTL returns the vote TTL in use (see WithVoteTTL).
func (s *Store) VoteTTL() time.Duration { return s.voteTTL }

// MonitorID returns this monitor's ID.
func (s *Store) MonitorID() string { return s.id }

func (s *Store) recordKey() string { return s.prefix + "/record" }
func (s *Store) holderKey() string { return s.prefix + "/holder" }
func (s *Store) voteDir() string   { return s.prefix + "/verdicts/" }
func (s *Store) voteKey() string   { return s.voteDir() + s.id }
func (s *Store) endpoints() string { return strings.Join(s.client.Endpoints(), ",") }
func (s *Store) describe() string {
	return fmt.Sprintf("etcd prefix %q at %s", s.prefix, s.endpoints())
}
func (s *Store) describeKey() string { return s.lock.String() }

// withTimeout bounds ctx by the Store's timeout; an earlier deadline of
// ctx still wins. A caller's longer deadline (the Monitor gives the lock
// 30s) must not stretch one call to an unreachable etcd past the timeout:
// the monitor would sit out whole rounds before it reports etcd lost,
// and find etcd back only that much later.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// ErrUnreachable and ErrRefused tell apart the two ways an etcd request
// fails; every *UnavailableError matches exactly one of them.
//
//   - ErrUnreachable: no answer came from etcd — transport errors
//     (connection refused, reset, TLS handshake), a member without a
//     leader or quorum ("no leader", "request timed out"), or the call's
//     deadline. Only this may let FallbackLock take the local lock, and
//     fstaidd exits 70 (restarted) on it at start-up.
//   - ErrRefused: etcd answered "no" — permission denied, a refused or
//     expired credential, the NOSPACE alarm, an unknown lease. etcd is
//     there and decides: no fallback.
var (
	ErrUnreachable = errors.New("etcd: unreachable")
	ErrRefused     = errors.New("etcd: request refused")
)

// UnavailableError reports that etcd could not be reached or refused a
// request. errors.Is(err, fstaid.ErrLockUnavailable) holds, and exactly
// one of errors.Is(err, ErrUnreachable) and errors.Is(err, ErrRefused).
type UnavailableError struct {
	// Op is what failed ("creating the record").
	Op string
	// Where is the key prefix and the endpoints.
	Where string
	// Unreachable is true when no answer came from etcd (ErrUnreachable),
	// false when etcd refused (ErrRefused).
	Unreachable bool
	Err         error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("etcd: %s at %s: %v", e.Op, e.Where, e.Err)
}

// Is reports whether target is fstaid.ErrLockUnavailable, or the one of
// ErrUnreachable and ErrRefused that describes the failure.
func (e *UnavailableError) Is(target error) bool {
	switch target {
	case fstaid.ErrLockUnavailable:
		return true
	case ErrUnreachable:
		return e.Unreachable
	case ErrRefused:
		return !e.Unreachable
	}
	return false
}

func (e *UnavailableError) Unwrap() error { return e.Err }

func (s *Store) unavailable(op string, err error) error {
	return &UnavailableError{Op: op, Where: s.describe(), Unreachable: unreachable(err), Err: err}
}

// unreachable reports whether err means that no answer came from etcd:
// a deadline or cancellation, or a gRPC status Unavailable (transport
// errors, and the server's own "no leader", "request timed out", "server
// stopped"), DeadlineExceeded or Canceled. Every other error — above all
// PermissionDenied, Unauthenticated, InvalidArgument (authentication
// failed), ResourceExhausted (NOSPACE) — is an answer: etcd refused.
// An error of unknown kind counts as an answer too: the safe side, since
// only the unreachable case may fall back.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// Status is the state of a target's failover in etcd, for `fstaidd
// status`.
type Status struct {
	// Lock describes the record's key and the endpoints.
	Lock string `json:"lock"`
	// Record is the failover record, nil when there is none (armed
	// monitors may fail over).
	Record *fstaid.Record `json:"record,omitempty"`
	// Revision is the record's CreateRevision (0 when none), as etcdctl
	// shows it.
	Revision int64 `json:"revision,omitempty"`
	// Holder is the live holder of the record, nil when none is alive.
	Holder *Holder `json:"holder,omitempty"`
	// Interrupted reports a record still failing-over whose holder is no
	// longer alive: the holder died (or lost etcd) while its handlers
	// ran. No other monitor takes over; a human must check the target
	// and the standby.
	Interrupted bool `json:"interrupted,omitempty"`
	// Votes are the fresh votes of every monitor, by monitor ID.
	Votes []Vote `json:"verdicts"`
	// Quorum is k once this Store's Votes made a Quorum check, else 0.
	Quorum int `json:"quorum,omitempty"`
	// Live are the monitors whose fresh vote matches this monitor's
	// scope (WithVoteScope): those a Quorum check counts.
	Live []string `json:"live,omitempty"`
	// Mismatched are the monitors whose vote is about another target
	// or configuration: never counted.
	Mismatched []string `json:"mismatched,omitempty"`
	// Warnings say what keeps k-of-n from working: fewer live monitors
	// than k, a duplicate monitor ID, mismatched votes.
	Warnings []string `json:"warnings,omitempty"`
}

// Status reads the record, its holder and every fresh vote in one
// consistent read.
func (s *Store) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(s.recordKey()),
		clientv3.OpGet(s.holderKey()),
		clientv3.OpGet(s.voteDir(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, s.unavailable("reading the status", err)
	}
	st := &Status{Lock: s.describeKey(), Votes: []Vote{}}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		st.Record = decodeRecord(kvs[0].Value)
		st.Revision = kvs[0].CreateRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		var h Holder
		if json.Unmarshal(kvs[0].Value, &h) == nil {
			st.Holder = &h
		}
	}
	st.Interrupted = st.Record != nil && st.Record.State == fstaid.RecordFailingOver && st.Holder == nil
	st.Votes = decodeVotes(resp.Responses[2].GetResponseRange().GetKvs(), s.voteDir())
	sort.Slice(st.Votes, func(i, j int) bool { return st.Votes[i].Monitor < st.Votes[j].Monitor })
	for _, vd := range st.Votes {
		if s.votes.matches(vd) {
			st.Live = append(st.Live, vd.Monitor)
		} else {
			st.Mismatched = append(st.Mismatched, vd.Monitor)
		}
	}
	st.Quorum = int(s.votes.k.Load())
	if st.Quorum > 0 && len(st.Live) < st.Quorum {
		st.Warnings = append(st.Warnings, fmt.Sprintf("only %d live monitor(s) publish verdicts (%s) but quorum is %d: the target can never be confirmed dead until more run",
			len(st.Live), strings.Join(st.Live, ", "), st.Quorum))
	}
	if len(st.Mismatched) > 0 {
		st.Warnings = append(st.Warnings, fmt.Sprintf("verdicts of %s are about another target or configuration (target %q, config %q here) and do not count",
			strings.Join(st.Mismatched, ", "), s.target, s.digest))
	}
	if err := s.votes.Duplicate(); err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	}
	return st, nil
}

// Close withdraws this monitor's vote and revokes the holder lease
// (the record stays), then closes the client if the Store made it (Open).
// Call it after the Monitor's Run returned. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		var errs *multierror.Error
		if err := s.votes.Close(); err != nil {
			errs = multierror.Append(errs, err)
		}
		if err := s.lock.Close(); err != nil {
			errs = multierror.Append(errs, err)
		}
		if s.ownsClient {
			if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
				errs = multierror.Append(errs, err)
			}
		}
		s.closeErr = errs.ErrorOrNil()
	})
	return s.closeErr
}
