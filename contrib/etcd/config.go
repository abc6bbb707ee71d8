package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/fstaid/fstaid/contrib/internal/config"
)

// Config is the etcd table of fstaidd.toml (below). Durations are in
// seconds, fractions allowed, or Go duration strings ("1m30s"), at most
// 24 hours. The daemon uses etcd only when the table is
// present; the file lock stays the default.
//
//	[etcd]
//	endpoints = ["https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"]
//	prefix = "/fstaid/db1"     # one prefix per target, shared by its monitors
//	dial_timeout = 5           # also bounds each etcd call (default 5)
//	username = "fstaid"        # etcd auth (optional)
//	password = "..."
//	cert_file = "/etc/fstaidd/etcd.crt"   # TLS client certificate (optional)
//	key_file = "/etc/fstaidd/etcd.key"
//	ca_file = "/etc/fstaidd/etcd-ca.crt"  # CA for the servers (optional)
//	monitor_id = "mon-a"       # default: the host name; unique per monitor
//	holder_ttl = 10            # liveness lease of the lock holder (default 10)
//	verdict_ttl = 20           # how long a vote counts (default: 10, or
//	                           # interval + the round's worst case if longer;
//	                           # a shorter value is refused)
//	quorum = 2                 # k: dead votes needed; 0 (default) = votes off
//	on_unavailable = "fail-closed"  # or "local-lock" (see FallbackLock)
//
// By default, when etcd cannot be reached no failover happens (see Lock);
// on_unavailable = "local-lock" fails over with a local lock instead
// (FallbackLock), at the price of one failover per monitor at worst.
type Config struct {
	Endpoints   []string      `toml:"endpoints"`
	Prefix      string        `toml:"prefix"`
	DialTimeout time.Duration `toml:"dial_timeout"`
	Username    string        `toml:"username"`
	Password    string        `toml:"password"`
	CertFile    string        `toml:"cert_file"`
	KeyFile     string        `toml:"key_file"`
	CAFile      string        `toml:"ca_file"`
	MonitorID   string        `toml:"monitor_id"`
	HolderTTL   time.Duration `toml:"holder_ttl"`
	VoteTTL     time.Duration `toml:"verdict_ttl"`
	// Quorum is k of k-of-n votes: 0 disables them; k >= 1 makes the
	// daemon use Votes.Quorum(k) as the secondary check.
	Quorum int `toml:"quorum"`
	// OnUnavailable is what a failover does when etcd cannot be reached:
	// OnUnavailableFailClosed (the default, also "") or
	// OnUnavailableLocalLock.
	OnUnavailable string `toml:"on_unavailable"`

	// Interval and RoundBound are not keys of the table: the daemon sets
	// them from [global] interval and the checks' timeouts (the sum
	// fstaid.Monitor.RoundBound makes) before Validate, so that a
	// verdict_ttl that rounds outlast is refused and the default is
	// derived (see WithRoundTiming, MinVoteTTL). Zero: unknown.
	Interval   time.Duration `toml:"-"`
	RoundBound time.Duration `toml:"-"`
	// Target and Digest are not keys either: the daemon sets them to the
	// target's identity and a digest of what the monitors must agree on,
	// for WithVoteScope.
	Target string `toml:"-"`
	Digest string `toml:"-"`
}

// Values of Config.OnUnavailable.
const (
	OnUnavailableFailClosed = "fail-closed"
	OnUnavailableLocalLock  = "local-lock"
)

// DecodeSection reads the [etcd] table of the daemon's configuration:
// each key by its type, unknown keys refused with the closest known one;
// the problems go to the table's collector. The caller sets the fields
// that are not keys, then includes Validate's problems in the same
// collector.
func DecodeSection(t *config.Table) *Config {
	var cfg Config
	t.Decode(&cfg)
	return &cfg
}

// Validate returns every problem at once (a *multierror.Error of
// *config.Problem), each naming its key as "[etcd] key: reason", or nil.
func (c *Config) Validate() error {
	p := config.NewProblems(config.TableName("etcd"))
	bad := p.Add
	if len(c.Endpoints) == 0 {
		bad("endpoints", "at least one endpoint is required")
	}
	tlsWanted := c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
	for i, ep := range c.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case ep == "":
			bad(config.ValueName("endpoints", i), "is empty")
		case err != nil || !strings.Contains(ep, "://"):
			// clientv3 accepts host:port too, but a scheme says whether
			// TLS is meant; require it.
			bad("endpoints", "endpoint %q must be a URL like https://host:2379", ep)
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs":
			bad("endpoints", "endpoint %q: scheme must be http or https", ep)
		case u.Scheme == "http" && tlsWanted:
			bad("endpoints", "endpoint %q is plain http, but TLS files are set", ep)
		}
	}
	if c.Prefix == "" || strings.Trim(c.Prefix, "/") == "" {
		bad("prefix", "required, and not the root: give each target its own prefix, e.g. \"/fstaid/db1\"")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"holder_ttl", c.HolderTTL}, {"verdict_ttl", c.VoteTTL}} {
		if d.v < 0 || d.v > config.MaxDuration {
			bad(d.key, "must be between 0 (default) and %v seconds, got %v", config.MaxDuration.Seconds(), d.v.Seconds())
		}
	}
	if c.Interval > 0 && c.Quorum > 0 && c.VoteTTL > 0 {
		if floor := MinVoteTTL(c.Interval, c.RoundBound); c.VoteTTL < floor {
			bad("verdict_ttl", "%v s is below [global] interval = %v s plus the round's worst case %v s (attempts × (timeout + attempt_interval) + secondary + 2 × self, plus a margin): it must be at least %v s, or leave verdict_ttl unset to derive it; monitors whose rounds are further apart than the TTL never see each other's dead verdict",
				c.VoteTTL.Seconds(), c.Interval.Seconds(), c.RoundBound.Seconds(), floor.Seconds())
		}
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	if c.Username != "" && c.Password == "" {
		bad("username", "set without password")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			bad("cert_file", "required with key_file")
		} else {
			bad("key_file", "required with cert_file")
		}
	}
	for _, f := range []struct{ key, path string }{{"cert_file", c.CertFile}, {"key_file", c.KeyFile}, {"ca_file", c.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.key, "%v", err)
		}
	}
	if strings.Contains(c.MonitorID, "/") {
		bad("monitor_id", "must not contain \"/\", got %q", c.MonitorID)
	}
	if c.Quorum < 0 {
		bad("quorum", "must be 0 (verdicts off) or at least 1, got %d", c.Quorum)
	}
	switch c.OnUnavailable {
	case "", OnUnavailableFailClosed:
	case OnUnavailableLocalLock:
		if c.Quorum > 0 {
			bad("on_unavailable", "%q cannot work with quorum: the verdicts live in etcd, so an outage vetoes the failover anyway; choose one", c.OnUnavailable)
		}
	default:
		bad("on_unavailable", "must be %q (default) or %q, got %q", OnUnavailableFailClosed, OnUnavailableLocalLock, c.OnUnavailable)
	}
	return p.Err()
}

// or is d, or def when d is zero (unset).
func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ClientConfig returns the clientv3 configuration: endpoints, dial
// timeout, credentials and TLS. It reads the TLS files.
func (c *Config) ClientConfig() (clientv3.Config, error) {
	cc := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: or(c.DialTimeout, DefaultDialTimeout),
		Username:    c.Username,
		Password:    c.Password,
		Logger:      zap.NewNop(),
		// Detect a dead connection within seconds, even while idle.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream:  true,
	}
	tlsWanted := c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
	for _, ep := range c.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			tlsWanted = true
		}
	}
	if !tlsWanted {
		return cc, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return cc, fmt.Errorf("[etcd] cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return cc, fmt.Errorf("[etcd] ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cc, fmt.Errorf("[etcd] ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	cc.TLS = tc
	return cc, nil
}

// Options returns the Store options the configuration sets: monitor ID,
// TTLs (with a quorum and Interval set, the vote TTL's floor and
// derived default: WithRoundTiming), the per-call timeout (dial_timeout),
// and logger.
func (c *Config) Options(logger *slog.Logger) []Option {
	opts := []Option{
		WithTimeout(or(c.DialTimeout, DefaultDialTimeout)),
		WithHolderTTL(or(c.HolderTTL, DefaultHolderTTL)),
	}
	if c.VoteTTL != 0 {
		opts = append(opts, WithVoteTTL(c.VoteTTL))
	}
	if c.Interval > 0 && c.Quorum > 0 {
		opts = append(opts, WithRoundTiming(c.Interval, c.RoundBound))
	}
	if c.Target != "" || c.Digest != "" {
		opts = append(opts, WithVoteScope(c.Target, c.Digest))
	}
	if c.MonitorID != "" {
		opts = append(opts, WithMonitorID(c.MonitorID))
	}
	if logger != nil {
		opts = append(opts, WithLogger(logger))
	}
	return opts
}

// Open validates cfg, creates an etcd client and returns the Store for
// cfg.Prefix; opts are applied after the configuration's own. Without a
// username the client does not wait for etcd: an unreachable cluster
// shows as errors from the Store's methods (Lock.Probe first). With one,
// the client authenticates at once (within dial_timeout), and the error
// says which failure it was:
//   - an *UnavailableError wrapping ErrUnreachable (and
//     fstaid.ErrLockUnavailable): etcd could not be reached or gave no
//     answer in time — an outage, worth retrying;
//   - any other error: the configuration is wrong (invalid keys, TLS
//     files that cannot be read or parsed) or etcd refused the credential
//     (authentication failed) — a retry cannot fix it.
//
// Store.Close closes the client.
func Open(cfg *Config, logger *slog.Logger, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cc, err := cfg.ClientConfig()
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(cc)
	if err != nil {
		where := strings.Join(cfg.Endpoints, ",")
		if unreachable(err) {
			return nil, &UnavailableError{Op: "connecting and authenticating as " + cfg.Username, Where: where, Unreachable: true, Err: err}
		}
		return nil, fmt.Errorf("etcd: connecting to %s as %q: %w", where, cfg.Username, err)
	}
	s, err := NewStore(client, cfg.Prefix, append(cfg.Options(logger), opts...)...)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.ownsClient = true
	return s, nil
}
