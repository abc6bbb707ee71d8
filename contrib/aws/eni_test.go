package aws

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func TestENIDetachStaysInUsePastItsBound(t *testing.T) {
	fake, client := world(t)
	fake.SetDetachDelay(ec2fake.Never)
	h, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-standby",
		DetachTimeout: Duration(150 * time.Millisecond), PollInterval: Duration(10 * time.Millisecond)}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("gave up after %v; want about the 150ms detach_timeout", elapsed)
	}
	if err == nil {
		t.Fatal("Handle succeeded with the ENI stuck detaching")
	}
	for _, want := range []string{"eni-float", "in-use", "detaching on i-active", "detach_timeout", "not attached to i-standby"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if slices.Contains(fake.Actions(), "AttachNetworkInterface") {
		t.Error("attached while still detaching")
	}
	rep := h.LastReport()
	if n := strings.Count(strings.Join(operations(rep), " "), "DescribeNetworkInterfaces"); n < 3 {
		t.Errorf("calls %v: want the wait to poll", operations(rep))
	}
	if m := rep.Moves[0]; m.State != MoveFailed || m.From != "i-active" {
		t.Errorf("move %v", m)
	}
	// Once the detach completes, the next run finishes the move without
	// detaching again.
	fake.CompleteTransitions()
	fake.ResetCalls()
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("next run: %v", err)
	}
	want := []string{"DescribeNetworkInterfaces", "AttachNetworkInterface", "DescribeNetworkInterfaces"}
	if got := fake.Actions(); !slices.Equal(got, want) {
		t.Errorf("next run: calls %v, want %v", got, want)
	}
	if !kinds[1].moved(fake) {
		t.Error("next run did not attach")
	}
}

func TestENISlowDetachWithinItsBound(t *testing.T) {
	fake, client := world(t)
	fake.SetDetachDelay(60 * time.Millisecond)
	fake.SetAttachDelay(30 * time.Millisecond)
	h := kinds[1].make(t, client)
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	if !kinds[1].moved(fake) {
		t.Fatal("not moved")
	}
	ops := operations(h.LastReport())
	if ops[0] != "DescribeNetworkInterfaces" || ops[1] != "DescribeInstances" || ops[2] != "DetachNetworkInterface" || slices.Index(ops, "AttachNetworkInterface") < 4 {
		t.Errorf("calls %v: want describe, the standby, detach, polls, attach, polls", ops)
	}
}

func TestENIAttachFailsAfterDetachThenRetryCompletes(t *testing.T) {
	fake, client := world(t)
	fake.Deny("AttachNetworkInterface")
	h := kinds[1].make(t, client)
	err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if !errors.Is(err, ErrHalfDone) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v: want ErrHalfDone and ErrUnauthorized", err)
	}
	for _, want := range []string{"eni-float", "detached from i-active", "attaching it to i-standby at device index 1 failed", "run the handler again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if m := h.LastReport().Moves[0]; m.State != MoveDetached || m.From != "i-active" {
		t.Errorf("move %v: want detached from i-active", m)
	}
	if i := fake.Interface("eni-float"); i.Attachment != nil {
		t.Fatalf("fake: ENI still attached: %+v", i.Attachment)
	}

	// The retry (a human re-running the handler, or a second handler
	// call) completes it: describe (available), attach, confirm.
	fake.Allow("AttachNetworkInterface")
	fake.ResetCalls()
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !kinds[1].moved(fake) {
		t.Fatal("retry did not attach")
	}
	want := []string{"DescribeNetworkInterfaces", "AttachNetworkInterface", "DescribeNetworkInterfaces"}
	if got := fake.Actions(); !slices.Equal(got, want) {
		t.Errorf("retry calls %v, want %v", got, want)
	}
	if m := h.LastReport().Moves[0]; m.State != MoveMoved || m.From != "" {
		t.Errorf("retry move %v: want moved from nowhere", m)
	}
}

func TestENIForceDetach(t *testing.T) {
	for _, tc := range []struct {
		reason fstaid.Reason
		force  bool
		want   string
	}{
		{fstaid.ReasonAuto, false, "true"},
		{fstaid.ReasonManual, false, "false"},
		{fstaid.ReasonManual, true, "true"},
	} {
		fake, client := world(t)
		h, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-standby", ForceDetach: tc.force, PollInterval: Duration(5 * time.Millisecond)}, client, quiet(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Handle(ctxTimeout(t, 10*time.Second), &fstaid.Event{Reason: tc.reason}); err != nil {
			t.Fatal(err)
		}
		for _, c := range fake.Calls() {
			if c.Action == "DetachNetworkInterface" && c.Params.Get("Force") != tc.want {
				t.Errorf("reason %s force_detach %t: Force=%q, want %s", tc.reason, tc.force, c.Params.Get("Force"), tc.want)
			}
		}
	}
}

func TestENIValidate(t *testing.T) {
	fake, client := world(t)
	good := kinds[1].make(t, client).(*ENI)
	if err := good.Validate(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The standby in another zone, and a device index already taken.
	h, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-far", DeviceIndex: 0}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	fake.AddInterface(ec2fake.Interface{ID: "eni-far1", SubnetID: "subnet-b", VPCID: "vpc-1", AZ: "us-east-1b", PrivateIPs: []string{"10.0.2.31"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-x1", InstanceID: "i-far", DeviceIndex: 1}})
	err = h.Validate(ctxTimeout(t, 10*time.Second))
	for _, want := range []string{"availability zone us-east-1a but standby instance i-far is in us-east-1b", "already has eni-far1 at device_index 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
	// A primary interface cannot move.
	h, _ = NewENI(ENIConfig{NetworkInterfaceID: "eni-active0", InstanceID: "i-standby"}, client, quiet(t))
	if err := h.Validate(ctxTimeout(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "eni-active0 is the primary interface (device index 0) of i-active") {
		t.Errorf("Validate: %v", err)
	}
	// A missing ENI and a missing instance are both reported.
	h, _ = NewENI(ENIConfig{NetworkInterfaceID: "eni-gone", InstanceID: "i-gone"}, client, quiet(t))
	err = h.Validate(ctxTimeout(t, 10*time.Second))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "eni-gone") || !strings.Contains(err.Error(), "i-gone") {
		t.Errorf("Validate: %v; want both not found", err)
	}
}

// TestENIStandbyUnfitNeverDetaches: a standby that cannot take the ENI
// (another availability zone; not running) is found before anything
// changes: no fence, no DetachNetworkInterface, the ENI stays where it is.
func TestENIStandbyUnfitNeverDetaches(t *testing.T) {
	for _, tc := range []struct {
		name, standby, want string
		setup               func(*ec2fake.Server)
	}{
		{"another zone", "i-far", "network interface eni-float (subnet subnet-a) is in availability zone us-east-1a but standby instance i-far is in us-east-1b", nil},
		{"stopped", "i-standby", "standby instance i-standby is stopped, not running", func(f *ec2fake.Server) {
			f.AddInstance(ec2fake.Instance{ID: "i-standby", AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1", State: "stopped"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := world(t)
			if tc.setup != nil {
				tc.setup(fake)
			}
			h, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: tc.standby, PollInterval: Duration(5 * time.Millisecond),
				FenceConfig: FenceConfig{FenceInstanceID: "i-active"}}, client, quiet(t))
			if err != nil {
				t.Fatal(err)
			}
			err = h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
			if !errors.Is(err, ErrStandbyUnfit) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "eni-float not detached from i-active") {
				t.Errorf("Handle: %v\nwant ErrStandbyUnfit and %q", err, tc.want)
			}
			for _, op := range []string{"DetachNetworkInterface", "StopInstances", "AttachNetworkInterface"} {
				if slices.Contains(fake.Actions(), op) {
					t.Errorf("calls %v: %s before knowing the standby can take the ENI", fake.Actions(), op)
				}
			}
			if a := fake.Interface("eni-float").Attachment; a == nil || a.InstanceID != "i-active" || a.Status != "attached" {
				t.Errorf("the ENI is left %+v, want still attached to i-active", a)
			}
			if m := h.LastReport().Moves[0]; m.State != MoveNotTried {
				t.Errorf("move %v, want not_tried", m)
			}
		})
	}
}
