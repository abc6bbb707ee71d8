package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/fstaid/fstaid"
)

// Defaults of the ENI move's bounds.
const (
	DefaultDetachTimeout = time.Minute
	DefaultAttachTimeout = time.Minute
)

// ENIConfig is one [[aws.eni]]: move a whole network interface from the
// active instance to the standby.
type ENIConfig struct {
	// Name labels the handler; default the ENI's ID.
	Name string `toml:"name"`
	// NetworkInterfaceID is the ENI to move (eni-...). Required.
	NetworkInterfaceID string `toml:"network_interface_id"`
	// InstanceID is the standby instance (i-...). Required.
	InstanceID string `toml:"instance_id"`
	// DeviceIndex is where it is attached on the standby; default 1 (0 is
	// the primary interface, which cannot be moved).
	DeviceIndex int32 `toml:"device_index"`
	// ForceDetach forces the detach on a manual failover too; an
	// automatic failover always forces it, as the active is unreachable.
	ForceDetach bool `toml:"force_detach"`
	// DetachTimeout bounds the wait for the ENI to become available
	// after the detach (default 1 minute); AttachTimeout the wait for
	// "attached" after the attach (default 1 minute).
	DetachTimeout Duration `toml:"detach_timeout"`
	AttachTimeout Duration `toml:"attach_timeout"`
	FenceConfig
	// PollInterval is the pause between two Describe calls while waiting
	// (default 1s).
	PollInterval Duration `toml:"poll_interval"`
	// Timeout bounds the whole handler run in fstaidd (default 5
	// minutes); see WaitConfig.Timeout.
	Timeout Duration `toml:"timeout"`
}

// Validate returns every problem of the configuration, each naming its
// key.
func (c *ENIConfig) Validate() error {
	var p problems
	p.resourceID("network_interface_id", c.NetworkInterfaceID, "eni-")
	p.resourceID("instance_id", c.InstanceID, "i-")
	if c.DeviceIndex < 0 {
		p.Add("device_index", "must not be negative")
	}
	p.nonNegative("detach_timeout", c.DetachTimeout)
	p.nonNegative("attach_timeout", c.AttachTimeout)
	p.nonNegative("poll_interval", c.PollInterval)
	p.nonNegative("timeout", c.Timeout)
	if c.FenceInstanceID != "" && c.FenceInstanceID == c.InstanceID {
		p.Add("fence_instance_id", "is the standby (instance_id): fencing would stop the new active")
	}
	c.FenceConfig.validate(&p)
	p.timeoutCovers(c.Timeout, c.FenceConfig, wait{"detach_timeout", c.DetachTimeout, DefaultDetachTimeout}, wait{"attach_timeout", c.AttachTimeout, DefaultAttachTimeout})
	return p.Err()
}

func (c *ENIConfig) deviceIndex() int32 {
	if c.DeviceIndex == 0 {
		return 1
	}
	return c.DeviceIndex
}

// ENI moves a network interface: DescribeNetworkInterfaces (its
// attachment), DetachNetworkInterface from the old active (forced on an
// automatic failover or with force_detach), DescribeNetworkInterfaces
// until it is available (within detach_timeout), AttachNetworkInterface
// to the standby at device_index, DescribeNetworkInterfaces until
// attached (within attach_timeout). Attached to the standby already is
// success; an ENI left available by an earlier, half-done run is simply
// attached. A run that stops between detach and attach returns an error
// matching ErrHalfDone that says so, and the Report's move is "detached".
type ENI struct {
	base
	cfg ENIConfig
}

var _ Handler = (*ENI)(nil)

// NewENI returns the handler for cfg, or cfg's problems.
func NewENI(cfg ENIConfig, client *ec2.Client, opts ...Option) (*ENI, error) {
	h := &ENI{cfg: cfg}
	if err := h.setup(&cfg, client, opts); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *ENIConfig) handler() (kind, name string, fence FenceConfig, wait WaitConfig) {
	return "eni", cmp.Or(c.Name, c.NetworkInterfaceID), c.FenceConfig, WaitConfig{PollInterval: c.PollInterval, Timeout: c.Timeout}
}

func attachmentOf(eni *types.NetworkInterface) (instance, status, id string) {
	if a := eni.Attachment; a != nil {
		return str(a.InstanceId), string(a.Status), str(a.AttachmentId)
	}
	return "", "", ""
}

// Handle moves the ENI. ev decides whether the detach is forced: an
// automatic failover (the active is unreachable) always forces it.
func (h *ENI) Handle(ctx context.Context, ev *fstaid.Event) error {
	r := h.newRun()
	force := h.cfg.ForceDetach || ev == nil || ev.Reason != fstaid.ReasonManual
	return r.finish(ctx, h.handle(ctx, r, ev, force))
}

func (h *ENI) handle(ctx context.Context, r *run, ev *fstaid.Event, force bool) error {
	id, standby := h.cfg.NetworkInterfaceID, h.cfg.InstanceID
	mv := &Move{Resource: id, To: standby, State: MoveNotTried}
	r.report.Moves = append(r.report.Moves, *mv)
	defer func() { r.report.Moves[0] = *mv }()

	eni, err := describeENI(ctx, r, id)
	if err != nil {
		return err
	}
	inst, status, attID := attachmentOf(eni)
	mv.From = inst
	if inst == standby && status == string(types.AttachmentStatusAttached) {
		mv.State = MoveInPlace
		return nil
	}
	if inst != "" && inst != standby {
		// Before anything changes (the fence, the detach): can the
		// standby take the ENI? A detach that the attach cannot follow
		// leaves the ENI on nothing.
		in, err := h.describeInstance(ctx, r, standby)
		if err != nil {
			return fmt.Errorf("%s not detached from %s: describing the standby: %w", id, inst, err)
		}
		if errs := h.standbyFit(eni, in); len(errs) > 0 {
			return fmt.Errorf("%w: %s not detached from %s: %w", ErrStandbyUnfit, id, inst, errors.Join(errs...))
		}
	}
	if inst != standby {
		if err := h.gate(ctx, r, ev); err != nil {
			return err
		}
	}
	mv.State = MoveFailed
	if inst != "" && inst != standby {
		// Attached (or attaching, or detaching) on the old active.
		if status != string(types.AttachmentStatusDetaching) {
			_, err := call(ctx, r, "DetachNetworkInterface", id+" ("+attID+" on "+inst+")", h.client.DetachNetworkInterface, &ec2.DetachNetworkInterfaceInput{
				AttachmentId: aws.String(attID), Force: aws.Bool(force),
			})
			if err != nil {
				return err
			}
		}
		bound := h.cfg.DetachTimeout.or(DefaultDetachTimeout)
		var last string
		ok, err := h.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
			eni, err := describeENI(ctx, r, id)
			if err != nil {
				return false, err
			}
			last = string(eni.Status)
			if i, st, _ := attachmentOf(eni); i != "" {
				last += " (" + st + " on " + i + ")"
			}
			return eni.Status == types.NetworkInterfaceStatusAvailable, nil
		})
		if err != nil {
			return fmt.Errorf("detach of %s from %s requested, but waiting for it to become available failed: %w", id, inst, err)
		}
		if !ok {
			return fmt.Errorf("%s still %s %v after the detach from %s (detach_timeout); not attached to %s", id, last, bound, inst, standby)
		}
	}
	if inst != standby {
		mv.State = MoveDetached
		_, err := call(ctx, r, "AttachNetworkInterface", id+" -> "+standby, h.client.AttachNetworkInterface, &ec2.AttachNetworkInterfaceInput{
			NetworkInterfaceId: aws.String(id), InstanceId: aws.String(standby), DeviceIndex: aws.Int32(h.cfg.deviceIndex()),
		})
		if err != nil {
			from := "available"
			if inst != "" {
				from = "detached from " + inst
			}
			return fmt.Errorf("%w: %s is %s but attaching it to %s at device index %d failed; run the handler again to complete the move: %w",
				ErrHalfDone, id, from, standby, h.cfg.deviceIndex(), err)
		}
	}
	mv.State = MoveUnconfirm
	bound := h.cfg.AttachTimeout.or(DefaultAttachTimeout)
	var last string
	ok, err := h.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
		eni, err := describeENI(ctx, r, id)
		if err != nil {
			return false, err
		}
		i, st, _ := attachmentOf(eni)
		last = st + " on " + i
		return i == standby && st == string(types.AttachmentStatusAttached), nil
	})
	if err != nil {
		return fmt.Errorf("AttachNetworkInterface succeeded, but confirming failed: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: %s is %s, not attached to %s, %v after AttachNetworkInterface (attach_timeout)", ErrNotInPlace, id, last, standby, bound)
	}
	mv.State = MoveMoved
	return nil
}

// DryRun checks DescribeNetworkInterfaces, DetachNetworkInterface (on
// the ENI's current attachment; skipped when it has none),
// AttachNetworkInterface and the fencing calls.
func (h *ENI) DryRun(ctx context.Context) error {
	r := h.newRun()
	id := h.cfg.NetworkInterfaceID
	var errs []error
	_, err := call(ctx, r, "DescribeNetworkInterfaces", id, h.client.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}, DryRun: aws.Bool(true)})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	if eni, err := describeENI(ctx, r, id); err != nil {
		errs = append(errs, err)
	} else if inst, _, attID := attachmentOf(eni); inst != "" && inst != h.cfg.InstanceID {
		_, err := call(ctx, r, "DetachNetworkInterface", id+" ("+attID+" on "+inst+")", h.client.DetachNetworkInterface, &ec2.DetachNetworkInterfaceInput{
			AttachmentId: aws.String(attID), Force: aws.Bool(true), DryRun: aws.Bool(true),
		})
		if err := dryRunResult(err); err != nil {
			errs = append(errs, err)
		}
	}
	_, err = call(ctx, r, "AttachNetworkInterface", id+" -> "+h.cfg.InstanceID, h.client.AttachNetworkInterface, &ec2.AttachNetworkInterfaceInput{
		NetworkInterfaceId: aws.String(id), InstanceId: aws.String(h.cfg.InstanceID), DeviceIndex: aws.Int32(h.cfg.deviceIndex()), DryRun: aws.Bool(true),
	})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, h.ownFenceDryRun(ctx, r)...)
	return errors.Join(errs...)
}

// Validate checks that the ENI and the standby exist and that the
// standby can take the ENI (standbyFit: same availability zone and VPC,
// the ENI not a primary interface, the standby running with its
// device_index free). The problems that may change before a failover
// (the standby's state, its device index) match ErrMayChange.
func (h *ENI) Validate(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	eni, err := describeENI(ctx, r, h.cfg.NetworkInterfaceID)
	if err != nil {
		errs = append(errs, err)
	}
	in, err := h.describeInstance(ctx, r, h.cfg.InstanceID)
	if err != nil {
		errs = append(errs, err)
	}
	if eni != nil && in != nil {
		errs = append(errs, h.standbyFit(eni, in)...)
	}
	if err := h.validateFence(ctx, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// standbyFit lists why the standby instance in cannot take eni: another
// availability zone or VPC (never works), eni is a primary interface
// (device index 0 cannot be detached), the standby is not running or its
// device_index holds another interface (these may change: they match
// ErrMayChange). Handle checks it before detaching; Validate at start-up.
func (h *ENI) standbyFit(eni *types.NetworkInterface, in *types.Instance) []error {
	var errs []error
	id, standby := h.cfg.NetworkInterfaceID, h.cfg.InstanceID
	eniAZ := str(eni.AvailabilityZone)
	var inAZ string
	if in.Placement != nil {
		inAZ = str(in.Placement.AvailabilityZone)
	}
	if eniAZ != inAZ {
		errs = append(errs, about(id, fmt.Errorf("network interface %s (subnet %s) is in availability zone %s but standby instance %s is in %s: an ENI cannot move across zones", id, str(eni.SubnetId), eniAZ, standby, inAZ)))
	} else if v, w := str(eni.VpcId), str(in.VpcId); v != "" && w != "" && v != w {
		errs = append(errs, about(id, fmt.Errorf("network interface %s (subnet %s) is in VPC %s but standby instance %s is in %s", id, str(eni.SubnetId), v, standby, w)))
	}
	if eni.Attachment != nil && aws.ToInt32(eni.Attachment.DeviceIndex) == 0 && str(eni.Attachment.InstanceId) != standby {
		errs = append(errs, about(id, fmt.Errorf("network interface %s is the primary interface (device index 0) of %s: a primary interface cannot be detached; move a secondary ENI", id, str(eni.Attachment.InstanceId))))
	}
	if st := stateName(in.State); st != "running" {
		errs = append(errs, mayChange(about(standby, fmt.Errorf("standby instance %s is %s, not running", standby, st))))
	}
	for _, ni := range in.NetworkInterfaces {
		if ni.Attachment != nil && aws.ToInt32(ni.Attachment.DeviceIndex) == h.cfg.deviceIndex() && str(ni.NetworkInterfaceId) != id {
			errs = append(errs, mayChange(about(standby, fmt.Errorf("standby instance %s already has %s at device_index %d", standby, str(ni.NetworkInterfaceId), h.cfg.deviceIndex()))))
		}
	}
	return errs
}
