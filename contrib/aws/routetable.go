package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

// RouteTableConfig is one [[aws.route_table]]: point existing routes (an
// overlay IP's /32, as Pacemaker's aws-vpc-move-ip does) in one or more
// route tables at the standby's ENI.
type RouteTableConfig struct {
	// Name labels the handler; default the first destination.
	Name string `toml:"name"`
	// RouteTableIDs are the tables (rtb-...). Required.
	RouteTableIDs []string `toml:"route_table_ids"`
	// DestinationCIDRBlocks are the routes' destinations, usually one
	// /32 overlay address. Each must exist in every table. Required.
	DestinationCIDRBlocks []string `toml:"destination_cidr_blocks"`
	// NetworkInterfaceID is the standby's ENI (eni-...), whose
	// source/destination check must be off. Required.
	NetworkInterfaceID string `toml:"network_interface_id"`
	FenceConfig
	WaitConfig
}

// Validate returns every problem of the configuration, each naming its
// key.
func (c *RouteTableConfig) Validate() error {
	var p problems
	if len(c.RouteTableIDs) == 0 {
		p.Add("route_table_ids", "required")
	}
	for i, id := range c.RouteTableIDs {
		p.resourceID(config.ValueName("route_table_ids", i), id, "rtb-")
	}
	if len(c.DestinationCIDRBlocks) == 0 {
		p.Add("destination_cidr_blocks", "required")
	}
	for i, d := range c.DestinationCIDRBlocks {
		pr, err := netip.ParsePrefix(d)
		if err != nil || !pr.Addr().Is4() || pr.Masked() != pr {
			p.Add(config.ValueName("destination_cidr_blocks", i), "%q is not an IPv4 CIDR block such as 10.0.255.10/32", d)
		}
	}
	p.resourceID("network_interface_id", c.NetworkInterfaceID, "eni-")
	return p.confirmedMove(c.FenceConfig, c.WaitConfig)
}

// RouteTable points routes at the standby's ENI: DescribeRouteTables
// (where each route points), ReplaceRoute for each route not yet on the
// standby, DescribeRouteTables (confirm). A route that does not exist is
// an error: the handler replaces routes, it never creates them. When one
// ReplaceRoute fails the others are still made, and every failure is
// returned.
type RouteTable struct {
	base
	cfg RouteTableConfig
}

var _ Handler = (*RouteTable)(nil)

// NewRouteTable returns the handler for cfg, or cfg's problems.
func NewRouteTable(cfg RouteTableConfig, client *ec2.Client, opts ...Option) (*RouteTable, error) {
	h := &RouteTable{cfg: cfg}
	if err := h.setup(&cfg, client, opts); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *RouteTableConfig) handler() (kind, name string, fence FenceConfig, wait WaitConfig) {
	return "route_table", cmp.Or(c.Name, c.DestinationCIDRBlocks[0]), c.FenceConfig, c.WaitConfig
}

func routeTarget(r *types.Route) string {
	for _, s := range []*string{r.NetworkInterfaceId, r.InstanceId, r.GatewayId, r.NatGatewayId, r.TransitGatewayId, r.VpcPeeringConnectionId, r.LocalGatewayId, r.CarrierGatewayId, r.EgressOnlyInternetGatewayId} {
		if s != nil && *s != "" {
			return *s
		}
	}
	return ""
}

// routes describes the tables and returns the target of each configured
// route, keyed "rtb-...:cidr"; a missing route is absent.
func (h *RouteTable) routes(ctx context.Context, r *run) (map[string]string, error) {
	out, err := call(ctx, r, "DescribeRouteTables", strings.Join(h.cfg.RouteTableIDs, ","), h.client.DescribeRouteTables, &ec2.DescribeRouteTablesInput{RouteTableIds: h.cfg.RouteTableIDs})
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, rt := range out.RouteTables {
		for i := range rt.Routes {
			got[str(rt.RouteTableId)+":"+str(rt.Routes[i].DestinationCidrBlock)] = routeTarget(&rt.Routes[i])
		}
	}
	return got, nil
}

// Handle points the routes at the standby's ENI. Routes already there
// are left alone.
func (h *RouteTable) Handle(ctx context.Context, ev *fstaid.Event) error {
	r := h.newRun()
	return r.finish(ctx, h.handle(ctx, r, ev))
}

func (h *RouteTable) handle(ctx context.Context, r *run, ev *fstaid.Event) error {
	to := h.cfg.NetworkInterfaceID
	for _, rtb := range h.cfg.RouteTableIDs {
		for _, d := range h.cfg.DestinationCIDRBlocks {
			r.report.Moves = append(r.report.Moves, Move{Resource: rtb + ":" + d, To: to, State: MoveNotTried})
		}
	}
	got, err := h.routes(ctx, r)
	if err != nil {
		return err
	}
	var errs []error
	var todo []*Move
	for i := range r.report.Moves {
		m := &r.report.Moves[i]
		target, ok := got[m.Resource]
		switch {
		case !ok:
			m.State = MoveFailed
			errs = append(errs, fmt.Errorf("route table %s has no route to %s (the handler replaces routes; create it first)", strings.Split(m.Resource, ":")[0], strings.SplitN(m.Resource, ":", 2)[1]))
		case target == to:
			m.From, m.State = target, MoveInPlace
		default:
			m.From = target
			todo = append(todo, m)
		}
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	if err := h.gate(ctx, r, ev); err != nil {
		return errors.Join(append(errs, err)...)
	}
	var replaced []*Move
	for _, m := range todo {
		rtb, dest, _ := strings.Cut(m.Resource, ":")
		_, err := call(ctx, r, "ReplaceRoute", m.Resource, h.client.ReplaceRoute, &ec2.ReplaceRouteInput{
			RouteTableId: aws.String(rtb), DestinationCidrBlock: aws.String(dest), NetworkInterfaceId: aws.String(to),
		})
		if err != nil {
			m.State = MoveFailed
			errs = append(errs, err)
			continue
		}
		m.State = MoveUnconfirm
		replaced = append(replaced, m)
	}
	if len(replaced) == 0 {
		return errors.Join(errs...)
	}
	bound := h.cfg.ConfirmTimeout.or(DefaultConfirmTimeout)
	var wrong []string
	ok, err := h.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
		got, err := h.routes(ctx, r)
		if err != nil {
			return false, err
		}
		wrong = wrong[:0]
		for _, m := range replaced {
			if got[m.Resource] != to {
				wrong = append(wrong, m.Resource+" -> "+got[m.Resource])
			}
		}
		return len(wrong) == 0, nil
	})
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("ReplaceRoute succeeded, but confirming failed: %w", err))
	case !ok:
		errs = append(errs, fmt.Errorf("%w: %s, not %s, %v after ReplaceRoute", ErrNotInPlace, strings.Join(wrong, ", "), to, bound))
	default:
		for _, m := range replaced {
			m.State = MoveMoved
		}
	}
	return errors.Join(errs...)
}

// DryRun checks DescribeRouteTables, ReplaceRoute on every route,
// DescribeNetworkInterfaces and the fencing calls.
func (h *RouteTable) DryRun(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	check := func(err error) {
		if err := dryRunResult(err); err != nil {
			errs = append(errs, err)
		}
	}
	_, err := call(ctx, r, "DescribeRouteTables", strings.Join(h.cfg.RouteTableIDs, ","), h.client.DescribeRouteTables, &ec2.DescribeRouteTablesInput{RouteTableIds: h.cfg.RouteTableIDs, DryRun: aws.Bool(true)})
	check(err)
	for _, rtb := range h.cfg.RouteTableIDs {
		for _, d := range h.cfg.DestinationCIDRBlocks {
			_, err := call(ctx, r, "ReplaceRoute", rtb+":"+d, h.client.ReplaceRoute, &ec2.ReplaceRouteInput{
				RouteTableId: aws.String(rtb), DestinationCidrBlock: aws.String(d), NetworkInterfaceId: aws.String(h.cfg.NetworkInterfaceID), DryRun: aws.Bool(true),
			})
			check(err)
		}
	}
	_, err = call(ctx, r, "DescribeNetworkInterfaces", h.cfg.NetworkInterfaceID, h.client.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{
		NetworkInterfaceIds: []string{h.cfg.NetworkInterfaceID}, DryRun: aws.Bool(true),
	})
	check(err)
	errs = append(errs, h.ownFenceDryRun(ctx, r)...)
	return errors.Join(errs...)
}

// Validate checks that every route exists in every table and that the
// standby's ENI has its source/destination check off (otherwise it drops
// the overlay address's packets). Both may change before a failover:
// they match ErrMayChange.
func (h *RouteTable) Validate(ctx context.Context) error {
	r := h.newRun()
	var errs []error
	got, err := h.routes(ctx, r)
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, rtb := range h.cfg.RouteTableIDs {
			for _, d := range h.cfg.DestinationCIDRBlocks {
				if _, ok := got[rtb+":"+d]; !ok {
					errs = append(errs, mayChange(about(rtb+":"+d, fmt.Errorf("route table %s has no route to %s: create it (the handler only replaces routes)", rtb, d))))
				}
			}
		}
	}
	eni, err := describeENI(ctx, r, h.cfg.NetworkInterfaceID)
	if err != nil {
		errs = append(errs, err)
	} else if aws.ToBool(eni.SourceDestCheck) {
		errs = append(errs, mayChange(about(h.cfg.NetworkInterfaceID, fmt.Errorf("network interface %s has its source/destination check on: it would drop traffic for %s (aws ec2 modify-network-interface-attribute --no-source-dest-check)", h.cfg.NetworkInterfaceID, strings.Join(h.cfg.DestinationCIDRBlocks, ",")))))
	}
	if err := h.validateFence(ctx, r); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
