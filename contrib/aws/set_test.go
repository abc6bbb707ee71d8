package aws

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// failOver builds the [aws] section's handlers as fstaidd does (one set,
// each with its own timeout) and runs a manual failover through a real
// Monitor.
func failOver(t *testing.T, fake *ec2fake.Server, section string) *fstaid.Record {
	t.Helper()
	cfg, err := decodeSection(t, section)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := cfg.Handlers(newClient(t, fake, "us-east-1", testRetryer()), quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	opts := []fstaid.Option{
		fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return nil }), time.Second),
		fstaid.WithLock(fstaid.NewFileLock(t.TempDir() + "/fstaid.lock")),
		fstaid.WithLogger(nil),
	}
	for _, h := range hs {
		opts = append(opts, fstaid.WithHandler(h.Name(), h, h.Timeout()))
	}
	m, err := fstaid.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := m.Fail(context.Background())
	if rec == nil {
		t.Fatal("no record")
	}
	return rec
}

func routesOn(fake *ec2fake.Server, eni string) bool {
	for _, id := range []string{"rtb-1", "rtb-2"} {
		for _, r := range fake.RouteTable(id).Routes {
			if r.Destination == "10.0.255.10/32" && r.NetworkInterfaceID != eni {
				return false
			}
		}
	}
	return true
}

const eipFencedRouteNot = `
[aws]
region = "us-east-1"

[[aws.elastic_ip]]
name = "eip"
allocation_id = "eipalloc-1"
instance_id = "i-standby"
fence_instance_id = "i-active"
fence_timeout = 0.2
confirm_timeout = 1
poll_interval = 0.01

[[aws.route_table]]
name = "route"
route_table_ids = ["rtb-1", "rtb-2"]
destination_cidr_blocks = ["10.0.255.10/32"]
network_interface_id = "eni-standby0"
confirm_timeout = 1
poll_interval = 0.01
`

// TestFailedFenceStopsEveryMove: [[aws.elastic_ip]] fenced and
// [[aws.route_table]] not; the fence times out, so neither moves — the
// route must not go to the standby while the address stays on an
// unfenced old active.
func TestFailedFenceStopsEveryMove(t *testing.T) {
	fake, _ := world(t)
	fake.SetStopDelay(ec2fake.Never)
	rec := failOver(t, fake, eipFencedRouteNot)
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-active" {
		t.Errorf("the Elastic IP moved to %q although the fence failed", a.InstanceID)
	}
	if !routesOn(fake, "eni-active0") {
		t.Errorf("the route moved although the fence failed: %+v", fake.RouteTable("rtb-1").Routes)
	}
	ops := fake.Actions()
	for _, op := range []string{"AssociateAddress", "ReplaceRoute"} {
		if slices.Contains(ops, op) {
			t.Errorf("%s was called after a failed fence: %v", op, ops)
		}
	}
	var names []string
	for _, h := range rec.Handlers {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"aws.fence", "eip", "route"}) {
		t.Fatalf("handlers %v: want the fence step first", names)
	}
	if e := rec.Handlers[0].Error; !strings.Contains(e, "i-active still stopping after 200ms (fence_timeout)") {
		t.Errorf("fence step error %q", e)
	}
	for _, h := range rec.Handlers[1:] {
		if !strings.Contains(h.Error, "not moved: aws: fencing failed") {
			t.Errorf("handler %s: error %q, want not moved: fencing failed", h.Name, h.Error)
		}
	}
	if rec.State != fstaid.RecordHandlerFailed {
		t.Errorf("record state %v", rec.State)
	}
}

// TestOneFencePerFailover: two fenced handlers and an unfenced one share
// one fence: a single StopInstances, before the first move.
func TestOneFencePerFailover(t *testing.T) {
	fake, _ := world(t)
	fake.SetStopDelay(50 * time.Millisecond)
	section := strings.Replace(eipFencedRouteNot, "confirm_timeout = 1\npoll_interval = 0.01\n`", "confirm_timeout = 1\npoll_interval = 0.01\nfence_instance_id = \"i-active\"\nfence_timeout = 2\n", 1) + `
[[aws.secondary_ip]]
name = "ips"
private_ip_addresses = ["10.0.1.100"]
network_interface_id = "eni-standby0"
confirm_timeout = 1
poll_interval = 0.01
`
	section = strings.Replace(section, "fence_timeout = 0.2", "fence_timeout = 2", 1)
	rec := failOver(t, fake, section)
	if rec.State != fstaid.RecordDone {
		t.Fatalf("record %+v", rec)
	}
	ops := fake.Actions()
	stops := 0
	for _, op := range ops {
		if op == "StopInstances" {
			stops++
		}
	}
	if stops != 1 {
		t.Errorf("%d StopInstances for one failover, want 1: %v", stops, ops)
	}
	first := slices.IndexFunc(ops, func(op string) bool {
		return op == "AssociateAddress" || op == "ReplaceRoute" || op == "AssignPrivateIpAddresses"
	})
	if stop := slices.Index(ops, "StopInstances"); stop < 0 || first < stop || fake.Instance("i-active").State != "stopped" {
		t.Errorf("calls %v: want the fence before the first move", ops)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" || !routesOn(fake, "eni-standby0") {
		t.Errorf("not moved: address on %q, routes %+v", a.InstanceID, fake.RouteTable("rtb-1").Routes)
	}
	// Each handler's report shows the fence it relied on.
	for _, h := range rec.Handlers[1:] {
		if r, ok := h.Detail.(*Report); !ok || r.Fence == nil || !r.Fence.Fenced {
			t.Errorf("handler %s: detail %#v, want the shared fence in its report", h.Name, h.Detail)
		}
	}
}

// TestFailedFenceContinue: with continue_if_fence_failed the set moves
// anyway, and the failure is in the fence step's report.
func TestFailedFenceContinue(t *testing.T) {
	fake, _ := world(t)
	fake.Deny("StopInstances")
	rec := failOver(t, fake, strings.Replace(eipFencedRouteNot, "fence_timeout = 0.2", "fence_timeout = 0.2\ncontinue_if_fence_failed = true", 1))
	if rec.State != fstaid.RecordDone {
		t.Errorf("record %+v", rec)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" || !routesOn(fake, "eni-standby0") {
		t.Errorf("not moved with continue_if_fence_failed")
	}
	if r, ok := rec.Handlers[0].Detail.(*Report); !ok || r.Fence == nil || r.Fence.Fenced || !strings.Contains(r.Fence.Error, "UnauthorizedOperation") {
		t.Errorf("fence step detail %#v", rec.Handlers[0].Detail)
	}
}

// TestFenceSetConfigProblems: one failover fences one instance, and one
// continue_if_fence_failed decides for every handler.
func TestFenceSetConfigProblems(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"fence_instance_id = \"i-far\"", `[[aws.route_table]] #1 fence_instance_id: "i-far" differs from [[aws.elastic_ip]] #1 fence_instance_id "i-active"`},
		{"fence_instance_id = \"i-active\"\ncontinue_if_fence_failed = true", "[[aws.route_table]] #1 continue_if_fence_failed: true differs from [[aws.elastic_ip]] #1 continue_if_fence_failed false"},
	} {
		_, err := decodeSection(t, eipFencedRouteNot+tc.extra+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("route_table with %q: %v, want %q", tc.extra, err, tc.want)
		}
	}
	_, err := decodeSection(t, eipFencedRouteNot+`
[[aws.eni]]
network_interface_id = "eni-float"
instance_id = "i-active"
`)
	if err == nil || !strings.Contains(err.Error(), `[[aws.eni]] #1 instance_id: "i-active" is the instance to fence`) {
		t.Errorf("a standby that is the fenced instance: %v", err)
	}
}
