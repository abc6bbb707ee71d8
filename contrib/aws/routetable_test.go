package aws

import (
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func TestRouteTableValidate(t *testing.T) {
	fake, client := world(t)
	// The standby's ENI with its source/dest check on, and a route
	// missing from one table.
	fake.AddInterface(ec2fake.Interface{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20"}, SourceDestCheck: true,
		Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}})
	fake.AddRouteTable(ec2fake.RouteTable{ID: "rtb-2", VPCID: "vpc-1", Routes: []ec2fake.Route{{Destination: "10.0.0.0/16", GatewayID: "local"}}})
	h := kinds[3].make(t, client)
	err := h.Validate(ctxTimeout(t, 10*time.Second))
	for _, want := range []string{"route table rtb-2 has no route to 10.0.255.10/32", "eni-standby0 has its source/destination check on"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "rtb-1") {
		t.Errorf("Validate blames rtb-1: %v", err)
	}

	// Handle still moves what exists and reports the missing route.
	err = h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if err == nil || !strings.Contains(err.Error(), "route table rtb-2 has no route to 10.0.255.10/32") {
		t.Fatalf("Handle: %v", err)
	}
	moves := h.LastReport().Moves
	if moves[0].State != MoveMoved || moves[1].State != MoveFailed {
		t.Errorf("moves %v: want rtb-1 moved, rtb-2 failed", moves)
	}
}

func TestRouteTableOneReplaceFailsTheOtherIsMade(t *testing.T) {
	fake, client := world(t)
	fake.Inject("ReplaceRoute", ec2fake.Fault{Code: "InvalidParameterValue", Message: "boom"})
	h := kinds[3].make(t, client)
	err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if err == nil || !strings.Contains(err.Error(), "ReplaceRoute rtb-1:10.0.255.10/32: InvalidParameterValue: boom") {
		t.Fatalf("Handle: %v", err)
	}
	for _, r := range fake.RouteTable("rtb-2").Routes {
		if r.Destination == "10.0.255.10/32" && r.NetworkInterfaceID != "eni-standby0" {
			t.Errorf("rtb-2 not moved: %+v", r)
		}
	}
	// The retry moves only what is left.
	fake.ResetCalls()
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(fake.Actions(), " "), "ReplaceRoute"); n != 1 {
		t.Errorf("retry: %d ReplaceRoute, want 1", n)
	}
}
