package aws

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

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
