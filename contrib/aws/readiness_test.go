package aws

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// callCounter counts WithReadinessCalls' operations.
type callCounter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *callCounter) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[op]++
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ops {
		n += v
	}
	return n
}

// TestReadyOnAGoodWorld: every handler is ready, Ready changes nothing,
// and the EC2 calls a readiness run makes are counted, exactly those (the
// numbers README's table gives).
func TestReadyOnAGoodWorld(t *testing.T) {
	want := map[string]int{"elastic_ip": 4, "eni": 6, "secondary_ip": 3, "route_table": 6}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			var calls callCounter
			h := k.make(t, client, WithReadinessCalls(calls.count))
			if ps := h.Ready(ctxTimeout(t, 10*time.Second)); len(ps) != 0 {
				t.Fatalf("Ready = %v, want no problem", ps)
			}
			if k.moved(fake) {
				t.Error("Ready moved something")
			}
			for _, c := range fake.Calls() {
				if !c.DryRun && !strings.HasPrefix(c.Action, "Describe") {
					t.Errorf("Ready sent %s without DryRun", c.Action)
				}
			}
			if got := len(fake.Calls()); calls.total() != got || got != want[k.name] {
				t.Errorf("counted %d calls (%v), the endpoint saw %d, want %d", calls.total(), calls.ops, got, want[k.name])
			}
			// Only readiness runs count.
			if err := h.DryRun(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if calls.total() != want[k.name] {
				t.Errorf("DryRun outside a readiness run was counted: %v", calls.ops)
			}
		})
	}
}

// TestReadyNamesActionAndResource breaks the world the ways that rot a
// failover path — a permission revoked, the standby stopped, the Elastic
// IP released, a route deleted, EC2 throttling — and checks that Ready
// names each with its kind, resource and action, and is ready again once
// it is restored.
func TestReadyNamesActionAndResource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    int // index in kinds
		fence   bool
		break_  func(f *ec2fake.Server)
		restore func(f *ec2fake.Server)
		want    fstaid.Problem // Message: a substring
	}{
		{"permission revoked", 0, false,
			func(f *ec2fake.Server) { f.Deny("AssociateAddress") }, func(f *ec2fake.Server) { f.Allow("AssociateAddress") },
			fstaid.Problem{Kind: fstaid.ProblemPermission, Resource: "eipalloc-1", Action: "AssociateAddress", Message: "ec2:AssociateAddress"}},
		{"standby stopped (elastic IP)", 0, false,
			func(f *ec2fake.Server) { f.SetInstanceState("i-standby", "stopped") }, func(f *ec2fake.Server) { f.SetInstanceState("i-standby", "running") },
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "standby instance i-standby is stopped, not running"}},
		{"standby stopped (ENI)", 1, false,
			func(f *ec2fake.Server) { f.SetInstanceState("i-standby", "stopped") }, func(f *ec2fake.Server) { f.SetInstanceState("i-standby", "running") },
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "standby instance i-standby is stopped, not running"}},
		{"allocation released", 0, false,
			func(f *ec2fake.Server) { f.ReleaseAddress("eipalloc-1") },
			func(f *ec2fake.Server) {
				f.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10"})
			},
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "eipalloc-1", Action: "DescribeAddresses", Message: "not found in region us-east-1"}},
		{"route deleted", 3, false,
			func(f *ec2fake.Server) { f.DeleteRoute("rtb-2", "10.0.255.10/32") },
			func(f *ec2fake.Server) {
				f.AddRoute("rtb-2", ec2fake.Route{Destination: "10.0.255.10/32", NetworkInterfaceID: "eni-active0", InstanceID: "i-active"})
			},
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "rtb-2:10.0.255.10/32", Message: "route table rtb-2 has no route to 10.0.255.10/32"}},
		{"fencing permission revoked", 0, true,
			func(f *ec2fake.Server) { f.Deny("StopInstances") }, func(f *ec2fake.Server) { f.Allow("StopInstances") },
			fstaid.Problem{Kind: fstaid.ProblemPermission, Resource: "i-active", Action: "StopInstances", Message: "ec2:StopInstances"}},
		{"throttled", 0, false,
			func(f *ec2fake.Server) {
				for range 5 { // the retryer's attempts (testRetryer)
					f.Inject("AssociateAddress", ec2fake.Throttle)
				}
			}, func(*ec2fake.Server) {},
			fstaid.Problem{Kind: fstaid.ProblemUnverified, Resource: "eipalloc-1", Action: "AssociateAddress", Message: "RequestLimitExceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			h := kinds[tc.kind].make(t, client)
			if tc.fence {
				cfg := Config{ElasticIP: []ElasticIPConfig{{AllocationID: "eipalloc-1", InstanceID: "i-standby", WaitConfig: fastWait,
					FenceConfig: FenceConfig{FenceInstanceID: "i-active"}}}}
				hs, err := cfg.Handlers(client, quiet(t))
				if err != nil {
					t.Fatal(err)
				}
				h = hs[0] // the set's fence step
			}
			if ps := h.Ready(ctxTimeout(t, 10*time.Second)); len(ps) != 0 {
				t.Fatalf("Ready before = %v", ps)
			}
			tc.break_(fake)
			ps := h.Ready(ctxTimeout(t, 10*time.Second))
			if len(ps) != 1 {
				t.Fatalf("Ready = %v, want one problem like %v", ps, tc.want)
			}
			p := ps[0]
			if p.Kind != tc.want.Kind || p.Resource != tc.want.Resource || p.Action != tc.want.Action || !strings.Contains(p.Message, tc.want.Message) {
				t.Errorf("Ready = %s, want %s", p, tc.want)
			}
			tc.restore(fake)
			if ps := h.Ready(ctxTimeout(t, 10*time.Second)); len(ps) != 0 {
				t.Errorf("Ready after restoring = %v", ps)
			}
		})
	}
}

// A Validate problem that is no API error still names its resource.
func TestReadyResourcesOfValidateProblems(t *testing.T) {
	fake, client := world(t)
	fake.AddInterface(ec2fake.Interface{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20"}, SourceDestCheck: true,
		Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}})
	ps := kinds[3].make(t, client).Ready(ctxTimeout(t, 10*time.Second))
	if len(ps) != 1 || ps[0].Kind != fstaid.ProblemResource || ps[0].Resource != "eni-standby0" || !strings.Contains(ps[0].Message, "source/destination check on") {
		t.Errorf("Ready = %v, want the standby ENI's source/destination check", ps)
	}
	h, err := NewSecondaryIP(SecondaryIPConfig{PrivateIPAddresses: []string{"10.0.1.100", "10.0.2.100"}, NetworkInterfaceID: "eni-standby0"}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	ps = h.Ready(ctxTimeout(t, 10*time.Second))
	if got := fmt.Sprint(ps); len(ps) != 1 || ps[0].Resource != "10.0.2.100" || !slices.ContainsFunc(ps, func(p fstaid.Problem) bool { return p.Kind == fstaid.ProblemResource }) {
		t.Errorf("Ready = %s, want the address outside the subnet", got)
	}
}
