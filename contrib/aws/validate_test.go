package aws

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func TestValidateEveryHandlerOnAGoodWorld(t *testing.T) {
	for _, k := range kinds {
		_, client := world(t)
		if err := k.make(t, client).Validate(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Errorf("%s: Validate: %v", k.name, err)
		}
	}
}

func TestSecondaryIPValidateSubnet(t *testing.T) {
	_, client := world(t)
	h, err := NewSecondaryIP(SecondaryIPConfig{PrivateIPAddresses: []string{"10.0.1.100", "10.0.2.100"}, NetworkInterfaceID: "eni-standby0"}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Validate(ctxTimeout(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "private IP 10.0.2.100 is not in subnet subnet-a (10.0.1.0/24) of the standby's network interface eni-standby0") {
		t.Errorf("Validate: %v", err)
	}
	if strings.Contains(err.Error(), "10.0.1.100 ") {
		t.Errorf("Validate blames the good address: %v", err)
	}
}

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

func TestElasticIPToENIAndPrivateIP(t *testing.T) {
	fake, client := world(t)
	fake.AddInterface(ec2fake.Interface{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20", "10.0.1.21"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}})
	h, err := NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-1", NetworkInterfaceID: "eni-standby0", PrivateIPAddress: "10.0.1.21", WaitConfig: fastWait}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	a := fake.Address("eipalloc-1")
	if a.NetworkInterfaceID != "eni-standby0" || a.PrivateIP != "10.0.1.21" {
		t.Errorf("address %+v", a)
	}
	m := h.LastReport().Moves[0]
	if m.From != "i-active" || m.To != "eni-standby0:10.0.1.21" || m.State != MoveMoved {
		t.Errorf("move %v", m)
	}
	for _, c := range fake.Calls() {
		if c.Action == "AssociateAddress" && (c.Params.Get("AllowReassociation") != "true" || c.Params.Get("PrivateIpAddress") != "10.0.1.21") {
			t.Errorf("AssociateAddress params %v", c.Params)
		}
	}

	// A private IP the ENI does not hold is caught by Validate.
	h, _ = NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-1", NetworkInterfaceID: "eni-standby0", PrivateIPAddress: "10.0.1.99"}, client, quiet(t))
	if err := h.Validate(ctxTimeout(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "does not hold private_ip_address 10.0.1.99") {
		t.Errorf("Validate: %v", err)
	}
}

func TestElasticIPUnassociatedAtStart(t *testing.T) {
	fake, client := world(t)
	fake.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10"})
	h := kinds[0].make(t, client)
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	if m := h.LastReport().Moves[0]; m.From != "" || m.State != MoveMoved {
		t.Errorf("move %v", m)
	}
}

func TestValidateNotFoundNamesTheResource(t *testing.T) {
	_, client := world(t)
	h, _ := NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-nope", InstanceID: "i-nope", FenceConfig: FenceConfig{FenceInstanceID: "i-gone"}}, client, quiet(t))
	err := h.Validate(ctxTimeout(t, 10*time.Second))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Validate: %v", err)
	}
	for _, want := range []string{"DescribeAddresses eipalloc-nope: not found in region us-east-1 (InvalidAllocationID.NotFound", "DescribeInstances i-nope", "DescribeInstances i-gone"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
}

func TestSecondaryIPDryRunChecksWhatItCan(t *testing.T) {
	fake, client := world(t)
	h, _ := NewSecondaryIP(SecondaryIPConfig{PrivateIPAddresses: []string{"10.0.1.100"}, NetworkInterfaceID: "eni-standby0", FenceConfig: FenceConfig{FenceInstanceID: "i-active"}}, client, quiet(t))
	if err := h.DryRun(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := []string{"DescribeNetworkInterfaces", "StopInstances", "DescribeInstances"}
	if got := fake.Actions(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	fake.Deny("StopInstances")
	if err := h.DryRun(ctxTimeout(t, 10*time.Second)); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "StopInstances i-active") {
		t.Errorf("DryRun: %v", err)
	}
	if st := fake.Instance("i-active").State; st != "running" {
		t.Errorf("DryRun stopped the active: %s", st)
	}
}
