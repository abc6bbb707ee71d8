package aws

import (
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

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
