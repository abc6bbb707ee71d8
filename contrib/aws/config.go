package aws

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/fstaid/fstaid/contrib/internal/config"
)

// Duration is a duration in a TOML file, read by the one rule of every
// duration in fstaidd.toml: a number of seconds, fractions allowed, or a
// Go duration string such as "1m30s"; not negative, at most 24 hours.
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	p, err := config.ParseSeconds(v)
	if err != nil {
		return err
	}
	*d = Duration(p)
	return nil
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
		p.Add("max_attempts", "must not be negative")
	}
	p.nonNegative("max_backoff", c.MaxBackoff)
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "https://") && !strings.HasPrefix(c.Endpoint, "http://") {
		p.Add("endpoint", "want an http:// or https:// URL, not %q", c.Endpoint)
	}
	return p.Err()
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

// DecodeSection reads the [aws] table of the daemon's configuration
// (each key by its type, unknown keys refused with the closest known one)
// and validates it; every problem goes to the table's collector.
func DecodeSection(t *config.Table) *Config {
	var cfg Config
	t.Decode(&cfg)
	t.Problems().Include("", cfg.Validate())
	return &cfg
}

// Validate returns every problem of the section, each naming its table
// and key as fstaidd.toml spells them: "[aws] endpoint: ...",
// "[[aws.elastic_ip]] #1 allocation_id: ...", "[aws.imds] endpoint: ...".
func (c *Config) Validate() error {
	var p config.Problems
	p.Include(config.TableName("aws"), c.ClientConfig.Validate())
	for _, h := range c.handlers() {
		p.Include(h.where, h.validate())
	}
	if c.IMDS != nil {
		p.Include(config.TableName("aws.imds"), c.IMDS.Validate())
	}
	c.validateFence(&p)
	return p.Err()
}

// handlerConfig is one configured handler: where it is configured, its
// fencing settings, and how to validate and build it.
type handlerConfig struct {
	where    string // config.ElementName: "[[aws.elastic_ip]] #1"
	fence    FenceConfig
	poll     Duration
	standby  string // the standby instance, empty when the handler names none
	validate func() error
	build    func(*ec2.Client, []Option) (Handler, error)
}

// handlers lists the configured handlers in the order elastic_ip, eni,
// secondary_ip, route_table, each in file order.
func (c *Config) handlers() []handlerConfig {
	var out []handlerConfig
	for i := range c.ElasticIP {
		h := &c.ElasticIP[i]
		out = append(out, handlerConfig{config.ElementName("aws.elastic_ip", i), h.FenceConfig, h.PollInterval, h.InstanceID, h.Validate,
			func(cl *ec2.Client, o []Option) (Handler, error) { return NewElasticIP(*h, cl, o...) }})
	}
	for i := range c.ENI {
		h := &c.ENI[i]
		out = append(out, handlerConfig{config.ElementName("aws.eni", i), h.FenceConfig, h.PollInterval, h.InstanceID, h.Validate,
			func(cl *ec2.Client, o []Option) (Handler, error) { return NewENI(*h, cl, o...) }})
	}
	for i := range c.SecondaryIP {
		h := &c.SecondaryIP[i]
		out = append(out, handlerConfig{config.ElementName("aws.secondary_ip", i), h.FenceConfig, h.PollInterval, "", h.Validate,
			func(cl *ec2.Client, o []Option) (Handler, error) { return NewSecondaryIP(*h, cl, o...) }})
	}
	for i := range c.RouteTable {
		h := &c.RouteTable[i]
		out = append(out, handlerConfig{config.ElementName("aws.route_table", i), h.FenceConfig, h.PollInterval, "", h.Validate,
			func(cl *ec2.Client, o []Option) (Handler, error) { return NewRouteTable(*h, cl, o...) }})
	}
	return out
}

// sharedFence merges the handlers' fencing into the one fence of the
// set: the instance they all name, the longest fence_timeout, their
// (agreed) continue_if_fence_failed, the first fenced handler's poll
// interval. ok is false when no handler fences.
func (c *Config) sharedFence() (fc FenceConfig, poll Duration, ok bool) {
	for _, f := range c.handlers() {
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
func (c *Config) validateFence(p *config.Problems) {
	var first *handlerConfig
	hs := c.handlers()
	for i := range hs {
		f := &hs[i]
		if f.fence.FenceInstanceID == "" {
			continue
		}
		if first == nil {
			first = f
			continue
		}
		if f.fence.FenceInstanceID != first.fence.FenceInstanceID {
			p.At(f.where, "fence_instance_id", "%q differs from %s fence_instance_id %q: a failover fences one old active, once, before any move",
				f.fence.FenceInstanceID, first.where, first.fence.FenceInstanceID)
		} else if f.fence.ContinueIfFenceFailed != first.fence.ContinueIfFenceFailed {
			p.At(f.where, "continue_if_fence_failed", "%t differs from %s continue_if_fence_failed %t: one fence decides for every handler",
				f.fence.ContinueIfFenceFailed, first.where, first.fence.ContinueIfFenceFailed)
		}
	}
	if first != nil {
		for _, f := range hs {
			if f.standby != "" && f.standby == first.fence.FenceInstanceID && f.where != first.where {
				p.At(f.where, "instance_id", "%q is the instance to fence (%s fence_instance_id): fencing would stop the new active",
					f.standby, first.where)
			}
		}
	}
}

// problems collects one handler's problems, each naming its key; the
// whole Config places them (config.Problems.Include).
type problems struct{ config.Problems }

func (p *problems) nonNegative(key string, d Duration) {
	if d < 0 {
		p.Add(key, "must not be negative")
	}
}

func (p *problems) resourceID(key, v, prefix string) {
	switch {
	case v == "":
		p.Add(key, "required")
	case !strings.HasPrefix(v, prefix) || len(v) <= len(prefix):
		p.Add(key, "%q is not a %s... ID", v, prefix)
	}
}

func (p *problems) ipv4(key, v string) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		p.Add(key, "%q is not an IPv4 address", v)
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

// confirmedMove adds the problems of a handler that moves and then waits
// for a Describe to confirm (elastic_ip, secondary_ip, route_table): its
// fencing, a timeout that covers the fence and the confirmation, its
// waits; and returns every problem found.
func (p *problems) confirmedMove(fence FenceConfig, w WaitConfig) error {
	fence.validate(p)
	p.timeoutCovers(w.Timeout, fence, wait{"confirm_timeout", w.ConfirmTimeout, DefaultConfirmTimeout})
	w.validate(p)
	return p.Err()
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
	p.Add("timeout", "%v%s must be longer than %s%s: the handler would be cut in the middle of a wait (raise timeout or lower the waits)",
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
	var p config.Problems
	for _, hc := range c.handlers() {
		h, err := hc.build(client, opts)
		if err != nil {
			p.Include(hc.where, err)
			continue
		}
		hs = append(hs, h)
	}
	c.validateFence(&p)
	if err := p.Err(); err != nil {
		return nil, err
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
