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
	errs = append(errs, c.validateFence()...)
	return errors.Join(errs...)
}

// fencer is one handler's fencing settings, with where it is configured.
type fencer struct {
	where   string // "aws.elastic_ip[0]"
	fence   FenceConfig
	poll    Duration
	standby string // the standby instance, empty when the handler names none
}

func (c *Config) fencers() []fencer {
	var out []fencer
	for i, h := range c.ElasticIP {
		out = append(out, fencer{fmt.Sprintf("aws.elastic_ip[%d]", i), h.FenceConfig, h.PollInterval, h.InstanceID})
	}
	for i, h := range c.ENI {
		out = append(out, fencer{fmt.Sprintf("aws.eni[%d]", i), h.FenceConfig, h.PollInterval, h.InstanceID})
	}
	for i, h := range c.SecondaryIP {
		out = append(out, fencer{fmt.Sprintf("aws.secondary_ip[%d]", i), h.FenceConfig, h.PollInterval, ""})
	}
	for i, h := range c.RouteTable {
		out = append(out, fencer{fmt.Sprintf("aws.route_table[%d]", i), h.FenceConfig, h.PollInterval, ""})
	}
	return out
}

// sharedFence merges the handlers' fencing into the one fence of the
// set: the instance they all name, the longest fence_timeout, their
// (agreed) continue_if_fence_failed, the first fenced handler's poll
// interval. ok is false when no handler fences.
func (c *Config) sharedFence() (fc FenceConfig, poll Duration, ok bool) {
	for _, f := range c.fencers() {
		if f.fence.FenceInstanceID == "" {
			continue
		}
		if !ok {
			fc, poll, ok = f.fence, f.poll, true
		}
		fc.FenceTimeout = Duration(max(fc.bound(), f.fence.bound()))
	}
	return fc, poll, ok
}

// validateFence checks what one fence per failover needs: every fenced
// handler names the same instance and agrees on
// continue_if_fence_failed, and that instance is no handler's standby.
func (c *Config) validateFence() []error {
	var errs []error
	var first *fencer
	fs := c.fencers()
	for i := range fs {
		f := &fs[i]
		if f.fence.FenceInstanceID == "" {
			continue
		}
		if first == nil {
			first = f
			continue
		}
		if f.fence.FenceInstanceID != first.fence.FenceInstanceID {
			errs = append(errs, fmt.Errorf("%s.fence_instance_id: %q differs from %s.fence_instance_id %q: a failover fences one old active, once, before any move",
				f.where, f.fence.FenceInstanceID, first.where, first.fence.FenceInstanceID))
		} else if f.fence.ContinueIfFenceFailed != first.fence.ContinueIfFenceFailed {
			errs = append(errs, fmt.Errorf("%s.continue_if_fence_failed: %t differs from %s.continue_if_fence_failed %t: one fence decides for every handler",
				f.where, f.fence.ContinueIfFenceFailed, first.where, first.fence.ContinueIfFenceFailed))
		}
	}
	if first != nil {
		for _, f := range fs {
			if f.standby != "" && f.standby == first.fence.FenceInstanceID && f.where != first.where {
				errs = append(errs, fmt.Errorf("%s.instance_id: %q is the instance to fence (%s.fence_instance_id): fencing would stop the new active",
					f.where, f.standby, first.where))
			}
		}
	}
	return errs
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

// wait is one bounded wait of a handler, for timeoutCovers.
type wait struct {
	key string
	set Duration
	def time.Duration
}

// timeoutCovers refuses a handler timeout that is not longer than the
// waits it bounds: the fence (when configured: the same configuration
// also serves a handler used alone, which fences within its own timeout)
// and the handler's own waits. A shorter one would cut a wait in the
// middle and abort the move.
func (p *problems) timeoutCovers(timeout Duration, fence FenceConfig, waits ...wait) {
	if fence.FenceInstanceID != "" {
		waits = append([]wait{{"fence_timeout", fence.FenceTimeout, DefaultFenceTimeout}}, waits...)
	}
	if timeout < 0 {
		return
	}
	var sum time.Duration
	var parts []string
	for _, w := range waits {
		if w.set < 0 {
			return
		}
		d := w.set.or(w.def)
		sum += d
		part := fmt.Sprintf("%s %v", w.key, d)
		if w.set == 0 {
			part += " (default)"
		}
		parts = append(parts, part)
	}
	t := timeout.or(DefaultTimeout)
	if len(parts) == 0 || t > sum {
		return
	}
	def := ""
	if timeout == 0 {
		def = " (default)"
	}
	total := ""
	if len(parts) > 1 {
		total = fmt.Sprintf(" = %v", sum)
	}
	p.add("timeout", "%v%s must be longer than %s%s: the handler would be cut in the middle of a wait (raise timeout or lower the waits)",
		t, def, strings.Join(parts, " + "), total)
}

// Handlers builds every configured handler, in the order elastic_ip,
// eni, secondary_ip, route_table (each in file order), all on client, as
// one set: when any handler fences, a Fence step comes first and fences
// the old active once per failover, and every handler of the set —
// fenced or not — abides by its outcome (after a failed fence nothing
// moves, unless continue_if_fence_failed). It returns every construction
// problem at once.
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
	if err := errors.Join(c.validateFence()...); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if fc, poll, ok := c.sharedFence(); ok {
		f := newFence(fc, client, poll, opts)
		for _, h := range hs {
			h.(interface{ useFence(*Fence) }).useFence(f)
		}
		hs = append([]Handler{f}, hs...)
	}
	return hs, nil
}

// useFence makes the handler abide by its set's fence instead of its own.
func (b *base) useFence(f *Fence) { b.fence, b.ownFence = f, false }
