package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// SecondaryIPConfig is one [[aws.secondary_ip]]: move secondary private
// IPs (a VPC-internal floating IP, as the awsvip agent does) to the
// standby's ENI.
type SecondaryIPConfig struct {
	// Name labels the handler; default the first address.
	Name string `toml:"name"`
	// PrivateIPAddresses are the addresses to move. Required.
	PrivateIPAddresses []string `toml:"private_ip_addresses"`
	// NetworkInterfaceID is the standby's ENI (eni-...), which must be
	// in the addresses' subnet. Required.
	NetworkInterfaceID string `toml:"network_interface_id"`
	FenceConfig
	WaitConfig
}

// Validate returns every problem of the configuration, each naming its
// key.
func (c *SecondaryIPConfig) Validate() error {
	var p problems
	if len(c.PrivateIPAddresses) == 0 {
		p.Add("private_ip_addresses", "required")
	}
	for i, ip := range c.PrivateIPAddresses {
		p.ipv4(config.ValueName("private_ip_addresses", i), ip)
	}
	p.resourceID("network_interface_id", c.NetworkInterfaceID, "eni-")
	return p.confirmedMove(c.FenceConfig, c.WaitConfig)
}

// SecondaryIP moves secondary private IPs: DescribeNetworkInterfaces
// filtered by the addresses (who holds them), AssignPrivateIpAddresses
// with AllowReassignment to the standby's ENI, DescribeNetworkInterfaces
// of that ENI (confirm): three calls; one when already in place.
type SecondaryIP struct {
	base
	cfg SecondaryIPConfig
}

var _ Handler = (*SecondaryIP)(nil)

// NewSecondaryIP returns the handler for cfg, or cfg's problems.
func NewSecondaryIP(cfg SecondaryIPConfig, client *ec2.Client, opts ...Option) (*SecondaryIP, error) {
	h := &SecondaryIP{cfg: cfg}
	if err := h.setup(&cfg, client, opts); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *SecondaryIPConfig) handler() (kind, name string, fence FenceConfig, wait WaitConfig) {
	return "secondary_ip", cmp.Or(c.Name, strings.Join(c.PrivateIPAddresses, ",")), c.FenceConfig, c.WaitConfig
}

// Handle moves the addresses. Already on the standby's ENI is success.
func (h *SecondaryIP) Handle(ctx context.Context, ev *fstaid.Event) error {
	r := h.newRun()
	return r.finish(ctx, h.handle(ctx, r, ev))
}

func (h *SecondaryIP) handle(ctx context.Context, r *run, ev *fstaid.Event) error {
	ips, to := h.cfg.PrivateIPAddresses, h.cfg.NetworkInterfaceID
	for _, ip := range ips {
		r.report.Moves = append(r.report.Moves, Move{Resource: ip, To: to, State: MoveNotTried})
	}
	setState := func(state string, only func(m *Move) bool) {
		for i := range r.report.Moves {
			if only == nil || only(&r.report.Moves[i]) {
				r.report.Moves[i].State = state
			}
		}
	}
	out, err := call(ctx, r, "DescribeNetworkInterfaces", strings.Join(ips, ","), h.client.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: aws.String("addresses.private-ip-address"), Values: ips}},
	})
	if err != nil {
		return err
	}
	pending := 0
	for i := range r.report.Moves {
		m := &r.report.Moves[i]
		var holders []string
		for _, eni := range out.NetworkInterfaces {
			if hasPrivateIP(&eni, m.Resource) {
				holders = append(holders, str(eni.NetworkInterfaceId))
			}
		}
		m.From = strings.Join(holders, ",")
		if slices.Contains(holders, to) {
			m.State = MoveInPlace
		} else {
			pending++
		}
	}
	if pending == 0 {
		return nil
	}
	if err := h.gate(ctx, r, ev); err != nil {
		return err
	}
	notInPlace := func(m *Move) bool { return m.State != MoveInPlace }
	setState(MoveFailed, notInPlace)
	_, err = call(ctx, r, "AssignPrivateIpAddresses", to+" <- "+strings.Join(ips, ","), h.client.AssignPrivateIpAddresses, &ec2.AssignPrivateIpAddressesInput{
		NetworkInterfaceId: aws.String(to), PrivateIpAddresses: ips, AllowReassignment: aws.Bool(true),
	})
	if err != nil {
		return err
	}
	setState(MoveUnconfirm, notInPlace)
	bound := h.cfg.ConfirmTimeout.or(DefaultConfirmTimeout)
	var missing []string
	ok, err := h.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
		eni, err := describeENI(ctx, r, to)
		if err != nil {
			return false, err
		}
		missing = missing[:0]
		for _, ip := range ips {
			if !hasPrivateIP(eni, ip) {
				missing = append(missing, ip)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("AssignPrivateIpAddresses succeeded, but confirming failed: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: %s not on %s %v after AssignPrivateIpAddresses", ErrNotInPlace, strings.Join(missing, ","), to, bound)
	}
	setState(MoveMoved, func(m *Move) bool { return m.State == MoveUnconfirm })
	return nil
}

// DryRun checks DescribeNetworkInterfaces and the fencing calls.
// AssignPrivateIpAddresses has no DryRun parameter in the EC2 API, so its
// permission cannot be checked without moving the addresses: DryRun logs
// a warning saying so, and the README's policy lists it.
func (h *SecondaryIP) DryRun(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	_, err := call(ctx, r, "DescribeNetworkInterfaces", h.cfg.NetworkInterfaceID, h.client.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{
		NetworkInterfaceIds: []string{h.cfg.NetworkInterfaceID}, DryRun: aws.Bool(true),
	})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, h.ownFenceDryRun(ctx, r)...)
	h.logger.Warn("ec2:AssignPrivateIpAddresses has no DryRun: its permission is not verified", "network_interface", h.cfg.NetworkInterfaceID)
	return errors.Join(errs...)
}

// Validate checks that the standby's ENI exists and that every address
// is inside its subnet (DescribeSubnets).
func (h *SecondaryIP) Validate(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	eni, err := describeENI(ctx, r, h.cfg.NetworkInterfaceID)
	if err != nil {
		errs = append(errs, err)
	} else {
		subnetID := str(eni.SubnetId)
		out, err := call(ctx, r, "DescribeSubnets", subnetID, h.client.DescribeSubnets, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnetID}})
		if err != nil {
			errs = append(errs, err)
		} else if len(out.Subnets) != 1 {
			errs = append(errs, about(subnetID, fmt.Errorf("DescribeSubnets %s: %d subnets in the answer", subnetID, len(out.Subnets))))
		} else {
			cidr := str(out.Subnets[0].CidrBlock)
			prefix, err := netip.ParsePrefix(cidr)
			if err != nil {
				errs = append(errs, about(subnetID, fmt.Errorf("subnet %s: CIDR %q: %w", subnetID, cidr, err)))
			}
			for _, ip := range h.cfg.PrivateIPAddresses {
				if a, perr := netip.ParseAddr(ip); err == nil && (perr != nil || !prefix.Contains(a)) {
					errs = append(errs, about(ip, fmt.Errorf("private IP %s is not in subnet %s (%s) of the standby's network interface %s", ip, subnetID, cidr, h.cfg.NetworkInterfaceID)))
				}
			}
		}
	}
	if err := h.validateFence(ctx, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
