package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/fstaid/fstaid"
)

// ElasticIPConfig is one [[aws.elastic_ip]]: move an Elastic IP to the
// standby instance, or to a standby ENI (and one of its private IPs).
type ElasticIPConfig struct {
	// Name labels the handler in logs and reports; default the
	// allocation ID.
	Name string `toml:"name"`
	// AllocationID is the Elastic IP (eipalloc-...). Required.
	AllocationID string `toml:"allocation_id"`
	// InstanceID is the standby instance: the address goes to its
	// primary ENI and primary private IP. Set it or NetworkInterfaceID.
	InstanceID string `toml:"instance_id"`
	// NetworkInterfaceID is the standby ENI (eni-...).
	NetworkInterfaceID string `toml:"network_interface_id"`
	// PrivateIPAddress is the ENI's private IP to associate with;
	// default its primary. Only with NetworkInterfaceID.
	PrivateIPAddress string `toml:"private_ip_address"`
	FenceConfig
	WaitConfig
}

// Validate returns every problem of the configuration, each naming its
// key.
func (c *ElasticIPConfig) Validate() error {
	var p problems
	p.resourceID("allocation_id", c.AllocationID, "eipalloc-")
	switch {
	case c.InstanceID == "" && c.NetworkInterfaceID == "":
		p.Add("instance_id", "set instance_id or network_interface_id (the standby)")
	case c.InstanceID != "" && c.NetworkInterfaceID != "":
		p.Add("network_interface_id", "set instance_id or network_interface_id, not both")
	case c.InstanceID != "":
		p.resourceID("instance_id", c.InstanceID, "i-")
	default:
		p.resourceID("network_interface_id", c.NetworkInterfaceID, "eni-")
	}
	if c.PrivateIPAddress != "" {
		if c.NetworkInterfaceID == "" {
			p.Add("private_ip_address", "only with network_interface_id")
		}
		p.ipv4("private_ip_address", c.PrivateIPAddress)
	}
	if c.FenceInstanceID != "" && c.FenceInstanceID == c.InstanceID {
		p.Add("fence_instance_id", "is the standby (instance_id): fencing would stop the new active")
	}
	return p.confirmedMove(c.FenceConfig, c.WaitConfig)
}

// ElasticIP moves an Elastic IP: DescribeAddresses (where it is),
// AssociateAddress with AllowReassociation (move it), DescribeAddresses
// (confirm) — three calls on the happy path, one when it is already in
// place. Fencing, when configured, comes first.
type ElasticIP struct {
	base
	cfg ElasticIPConfig
}

var _ Handler = (*ElasticIP)(nil)

// NewElasticIP returns the handler for cfg, or cfg's problems.
func NewElasticIP(cfg ElasticIPConfig, client *ec2.Client, opts ...Option) (*ElasticIP, error) {
	h := &ElasticIP{cfg: cfg}
	if err := h.setup(&cfg, client, opts); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *ElasticIPConfig) handler() (kind, name string, fence FenceConfig, wait WaitConfig) {
	return "elastic_ip", cmp.Or(c.Name, c.AllocationID), c.FenceConfig, c.WaitConfig
}

// target describes where the address goes.
func (h *ElasticIP) target() string {
	if h.cfg.InstanceID != "" {
		return h.cfg.InstanceID
	}
	if h.cfg.PrivateIPAddress != "" {
		return h.cfg.NetworkInterfaceID + ":" + h.cfg.PrivateIPAddress
	}
	return h.cfg.NetworkInterfaceID
}

func where(a *types.Address) string {
	switch {
	case a.AssociationId == nil && a.InstanceId == nil && a.NetworkInterfaceId == nil:
		return ""
	case a.InstanceId != nil:
		return str(a.InstanceId)
	case a.PrivateIpAddress != nil:
		return str(a.NetworkInterfaceId) + ":" + str(a.PrivateIpAddress)
	}
	return str(a.NetworkInterfaceId)
}

// inPlace reports whether a is associated where the handler moves it.
func (h *ElasticIP) inPlace(a *types.Address) bool {
	if a.AssociationId == nil {
		return false
	}
	if h.cfg.InstanceID != "" {
		return str(a.InstanceId) == h.cfg.InstanceID
	}
	if str(a.NetworkInterfaceId) != h.cfg.NetworkInterfaceID {
		return false
	}
	return h.cfg.PrivateIPAddress == "" || str(a.PrivateIpAddress) == h.cfg.PrivateIPAddress
}

func (h *ElasticIP) describe(ctx context.Context, r *run) (*types.Address, error) {
	id := h.cfg.AllocationID
	out, err := call(ctx, r, "DescribeAddresses", id, h.client.DescribeAddresses, &ec2.DescribeAddressesInput{AllocationIds: []string{id}})
	if err != nil {
		return nil, err
	}
	for i := range out.Addresses {
		if str(out.Addresses[i].AllocationId) == id {
			return &out.Addresses[i], nil
		}
	}
	return nil, &APIError{Operation: "DescribeAddresses", Resource: id, Region: h.client.Options().Region, Code: "InvalidAllocationID.NotFound", Err: errors.New("not in the answer")}
}

// Handle moves the address. Already in place is success. Errors are
// *Error values carrying the Report.
func (h *ElasticIP) Handle(ctx context.Context, ev *fstaid.Event) error {
	r := h.newRun()
	return r.finish(ctx, h.handle(ctx, r, ev))
}

func (h *ElasticIP) handle(ctx context.Context, r *run, ev *fstaid.Event) error {
	mv := &Move{Resource: h.cfg.AllocationID, To: h.target(), State: MoveNotTried}
	r.report.Moves = append(r.report.Moves, *mv)
	defer func() { r.report.Moves[0] = *mv }()

	a, err := h.describe(ctx, r)
	if err != nil {
		return err
	}
	mv.From = where(a)
	if h.inPlace(a) {
		mv.State = MoveInPlace
		return nil
	}
	if err := h.gate(ctx, r, ev); err != nil {
		return err
	}
	mv.State = MoveFailed
	if _, err := call(ctx, r, "AssociateAddress", h.cfg.AllocationID, h.client.AssociateAddress, h.associate(false)); err != nil {
		return err
	}
	mv.State = MoveUnconfirm
	var seen string
	bound := h.cfg.ConfirmTimeout.or(DefaultConfirmTimeout)
	ok, err := h.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
		a, err := h.describe(ctx, r)
		if err != nil {
			return false, err
		}
		seen = where(a)
		return h.inPlace(a), nil
	})
	if err != nil {
		return fmt.Errorf("AssociateAddress succeeded, but confirming failed: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: %s is at %q, not %s, %v after AssociateAddress", ErrNotInPlace, h.cfg.AllocationID, seen, h.target(), bound)
	}
	mv.State = MoveMoved
	return nil
}

// associate is the AssociateAddress that moves the address to the
// standby, the same for the move and for its DryRun.
func (h *ElasticIP) associate(dryRun bool) *ec2.AssociateAddressInput {
	in := &ec2.AssociateAddressInput{AllocationId: aws.String(h.cfg.AllocationID), AllowReassociation: aws.Bool(true)}
	if dryRun {
		in.DryRun = aws.Bool(true)
	}
	if h.cfg.InstanceID != "" {
		in.InstanceId = aws.String(h.cfg.InstanceID)
	} else {
		in.NetworkInterfaceId = aws.String(h.cfg.NetworkInterfaceID)
		if h.cfg.PrivateIPAddress != "" {
			in.PrivateIpAddress = aws.String(h.cfg.PrivateIPAddress)
		}
	}
	return in
}

// DryRun checks that DescribeAddresses and AssociateAddress (and the
// fencing calls) are allowed.
func (h *ElasticIP) DryRun(ctx context.Context) error {
	r := h.newRun()
	id := h.cfg.AllocationID
	var errs []error
	_, err := call(ctx, r, "DescribeAddresses", id, h.client.DescribeAddresses, &ec2.DescribeAddressesInput{AllocationIds: []string{id}, DryRun: aws.Bool(true)})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	_, err = call(ctx, r, "AssociateAddress", id, h.client.AssociateAddress, h.associate(true))
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, h.ownFenceDryRun(ctx, r)...)
	return errors.Join(errs...)
}

// Validate checks that the address and the standby exist in the region,
// that a standby instance is running, and that a standby ENI holds
// private_ip_address (the last two may change: ErrMayChange).
func (h *ElasticIP) Validate(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	if _, err := h.describe(ctx, r); err != nil {
		errs = append(errs, err)
	}
	if h.cfg.InstanceID != "" {
		in, err := h.describeInstance(ctx, r, h.cfg.InstanceID)
		switch {
		case err != nil:
			errs = append(errs, err)
		case stateName(in.State) != "running":
			// AssociateAddress accepts a stopped instance: the move
			// would succeed and the address answer nothing.
			errs = append(errs, mayChange(about(h.cfg.InstanceID, fmt.Errorf("standby instance %s is %s, not running: the address would move to a server that does not answer", h.cfg.InstanceID, stateName(in.State)))))
		}
	} else {
		eni, err := describeENI(ctx, r, h.cfg.NetworkInterfaceID)
		switch {
		case err != nil:
			errs = append(errs, err)
		case h.cfg.PrivateIPAddress != "" && !hasPrivateIP(eni, h.cfg.PrivateIPAddress):
			errs = append(errs, mayChange(about(h.cfg.NetworkInterfaceID, fmt.Errorf("network interface %s does not hold private_ip_address %s", h.cfg.NetworkInterfaceID, h.cfg.PrivateIPAddress))))
		}
	}
	if err := h.validateFence(ctx, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func hasPrivateIP(eni *types.NetworkInterface, ip string) bool {
	for _, p := range eni.PrivateIpAddresses {
		if str(p.PrivateIpAddress) == ip {
			return true
		}
	}
	return false
}

// describeENI describes one network interface.
func describeENI(ctx context.Context, r *run, id string) (*types.NetworkInterface, error) {
	out, err := call(ctx, r, "DescribeNetworkInterfaces", id, r.b.client.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	if err != nil {
		return nil, err
	}
	for i := range out.NetworkInterfaces {
		if str(out.NetworkInterfaces[i].NetworkInterfaceId) == id {
			return &out.NetworkInterfaces[i], nil
		}
	}
	return nil, &APIError{Operation: "DescribeNetworkInterfaces", Resource: id, Region: r.b.client.Options().Region, Code: "InvalidNetworkInterfaceID.NotFound", Err: errors.New("not in the answer")}
}
