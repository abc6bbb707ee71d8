package aws

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Duration is a duration in a TOML file: a number of seconds, fractions
// allowed (as every duration in fstaidd.toml), or a Go duration string
// such as "1m30s".
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*d = Duration(time.Duration(v) * time.Second)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxInt64/float64(time.Second) {
			return fmt.Errorf("duration %v out of range", v)
		}
		*d = Duration(time.Duration(v * float64(time.Second)))
	case string:
		p, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("want a number of seconds or a duration string, not %T", v)
	}
	return nil
}

// MarshalTOML writes the duration as seconds.
func (d Duration) MarshalTOML() ([]byte, error) {
	return []byte(fmt.Sprint(time.Duration(d).Seconds())), nil
}

func (d Duration) or(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// ClientConfig configures the EC2 client (NewClient).
type ClientConfig struct {
	// Region overrides the default chain's region (AWS_REGION, the
	// profile's region).
	Region string `toml:"region"`
	// Profile selects a shared-config profile.
	Profile string `toml:"profile"`
	// Endpoint overrides the EC2 endpoint (a VPC interface endpoint).
	Endpoint string `toml:"endpoint"`
	// MaxAttempts is the SDK retryer's attempts per call (default
	// DefaultMaxAttempts); MaxBackoff caps its backoff (default
	// DefaultMaxBackoff). The handler's timeout bounds both.
	MaxAttempts int      `toml:"max_attempts"`
	MaxBackoff  Duration `toml:"max_backoff"`
}

// Validate returns every problem of the client settings.
func (c *ClientConfig) Validate() error {
	var p problems
	if c.MaxAttempts < 0 {
		p.add("max_attempts", "must not be negative")
	}
	p.nonNegative("max_backoff", c.MaxBackoff)
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "https://") && !strings.HasPrefix(c.Endpoint, "http://") {
		p.add("endpoint", "want an http:// or https:// URL, not %q", c.Endpoint)
	}
	return p.err()
}

// Config is the whole [aws] section of fstaidd.toml: the client settings
// and each kind of handler as an array of tables ([[aws.elastic_ip]],
// [[aws.eni]], [[aws.secondary_ip]], [[aws.route_table]]).
type Config struct {
	ClientConfig
	ElasticIP   []ElasticIPConfig   `toml:"elastic_ip"`
	ENI         []ENIConfig         `toml:"eni"`
	SecondaryIP []SecondaryIPConfig `toml:"secondary_ip"`
	RouteTable  []RouteTableConfig  `toml:"route_table"`
	// IMDS configures the IMDSv2 self check, used when the daemon's
	// [self] asks for it.
	IMDS *IMDSConfig `toml:"imds"`
}

// DecodeConfig decodes the [aws] section as a TOML decoder left it (a
// map[string]any) into a Config, refusing unknown keys, and validates it.
// Every problem is returned at once, each naming its key.
func DecodeConfig(section map[string]any) (*Config, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(section); err != nil {
		return nil, fmt.Errorf("[aws]: %w", err)
	}
	var cfg Config
	md, err := toml.Decode(buf.String(), &cfg)
	if err != nil {
		return nil, fmt.Errorf("[aws]: %w", err)
	}
	var p problems
	for _, k := range md.Undecoded() {
		p.add(k.String(), "unknown key")
	}
	if err := cfg.Validate(); err != nil {
		p.errs = append(p.errs, err)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate returns every problem of the section, each naming its key as
// "aws.elastic_ip[0].allocation_id: ...".
func (c *Config) Validate() error {
	var errs []error
	prefix := func(where string, err error) {
		if err == nil {
			return
		}
		var p *problemsError
		if errors.As(err, &p) {
			for _, e := range p.errs {
				errs = append(errs, fmt.Errorf("%s.%w", where, e))
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", where, err))
	}
	prefix("aws", c.ClientConfig.Validate())
	for i := range c.ElasticIP {
		prefix(fmt.Sprintf("aws.elastic_ip[%d]", i), c.ElasticIP[i].Validate())
	}
	for i := range c.ENI {
		prefix(fmt.Sprintf("aws.eni[%d]", i), c.ENI[i].Validate())
	}
	for i := range c.SecondaryIP {
		prefix(fmt.Sprintf("aws.secondary_ip[%d]", i), c.SecondaryIP[i].Validate())
	}
	for i := range c.RouteTable {
		prefix(fmt.Sprintf("aws.route_table[%d]", i), c.RouteTable[i].Validate())
	}
	if c.IMDS != nil {
		prefix("aws.imds", c.IMDS.Validate())
	}
	return errors.Join(errs...)
}

// problems collects configuration problems, each naming its key.
type problems struct{ errs []error }

// problemsError is what problems.err returns: errors.Join's shape, one
// "key: reason" per line, kept apart so Config.Validate can prefix them.
type problemsError struct{ errs []error }

func (e *problemsError) Error() string   { return errors.Join(e.errs...).Error() }
func (e *problemsError) Unwrap() []error { return e.errs }

// keyError is one problem: Key then the reason.
type keyError struct{ Key, Reason string }

func (e *keyError) Error() string { return e.Key + ": " + e.Reason }

func (p *problems) add(key, format string, args ...any) {
	p.errs = append(p.errs, &keyError{key, fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &problemsError{p.errs}
}

func (p *problems) nonNegative(key string, d Duration) {
	if d < 0 {
		p.add(key, "must not be negative")
	}
}

func (p *problems) resourceID(key, v, prefix string) {
	switch {
	case v == "":
		p.add(key, "required")
	case !strings.HasPrefix(v, prefix) || len(v) <= len(prefix):
		p.add(key, "%q is not a %s... ID", v, prefix)
	}
}

func (p *problems) ipv4(key, v string) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		p.add(key, "%q is not an IPv4 address", v)
	}
}

// WaitConfig is how a handler polls for a state.
type WaitConfig struct {
	// ConfirmTimeout bounds the wait until the confirming Describe shows
	// the resource in place (default 30s; the happy path needs one call).
	ConfirmTimeout Duration `toml:"confirm_timeout"`
	// PollInterval is the pause between two Describe calls while waiting
	// (default 1s).
	PollInterval Duration `toml:"poll_interval"`
	// Timeout bounds the whole handler (fencing, the move, the
	// confirmation) when fstaidd runs it: each handler has its own, so a
	// slow cloud call cannot starve the handlers after it. Default 5
	// minutes.
	Timeout Duration `toml:"timeout"`
}

// DefaultTimeout bounds a whole handler run in fstaidd.
const DefaultTimeout = 5 * time.Minute

// DefaultConfirmTimeout bounds the wait for a move to be visible.
const DefaultConfirmTimeout = 30 * time.Second

func (c *WaitConfig) validate(p *problems) {
	p.nonNegative("confirm_timeout", c.ConfirmTimeout)
	p.nonNegative("poll_interval", c.PollInterval)
	p.nonNegative("timeout", c.Timeout)
}

// Handlers builds every configured handler, in the order elastic_ip,
// eni, secondary_ip, route_table (each in file order), all on client. It
// returns every construction problem at once.
func (c *Config) Handlers(client *ec2.Client, opts ...Option) ([]Handler, error) {
	var hs []Handler
	var errs []error
	add := func(h Handler, err error, where string) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			return
		}
		hs = append(hs, h)
	}
	for i, cfg := range c.ElasticIP {
		h, err := NewElasticIP(cfg, client, opts...)
		add(h, err, fmt.Sprintf("aws.elastic_ip[%d]", i))
	}
	for i, cfg := range c.ENI {
		h, err := NewENI(cfg, client, opts...)
		add(h, err, fmt.Sprintf("aws.eni[%d]", i))
	}
	for i, cfg := range c.SecondaryIP {
		h, err := NewSecondaryIP(cfg, client, opts...)
		add(h, err, fmt.Sprintf("aws.secondary_ip[%d]", i))
	}
	for i, cfg := range c.RouteTable {
		h, err := NewRouteTable(cfg, client, opts...)
		add(h, err, fmt.Sprintf("aws.route_table[%d]", i))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return hs, nil
}
