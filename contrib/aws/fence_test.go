package aws

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func fencedEIP(t *testing.T, client *ec2.Client, fence FenceConfig) *ElasticIP {
	t.Helper()
	h, err := NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-1", InstanceID: "i-standby", FenceConfig: fence, WaitConfig: fastWait}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFenceThenMove(t *testing.T) {
	fake, client := world(t)
	fake.SetStopDelay(40 * time.Millisecond)
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active", FenceTimeout: Duration(2 * time.Second)})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	if st := fake.Instance("i-active").State; st != "stopped" {
		t.Errorf("active is %s", st)
	}
	ops := fake.Actions()
	stop, assoc := slices.Index(ops, "StopInstances"), slices.Index(ops, "AssociateAddress")
	if stop < 0 || assoc < stop || !slices.Contains(ops[stop:assoc], "DescribeInstances") {
		t.Errorf("calls %v: want StopInstances, DescribeInstances until stopped, then AssociateAddress", ops)
	}
	for _, c := range fake.Calls() {
		if c.Action == "StopInstances" && c.Params.Get("Force") != "true" {
			t.Errorf("StopInstances Force=%q", c.Params.Get("Force"))
		}
	}
	f := h.LastReport().Fence
	if f == nil || !f.Fenced || f.From != "running" || f.To != "stopped" || f.Duration <= 0 {
		t.Errorf("fence report %+v", f)
	}
}

func TestFenceNeverStops(t *testing.T) {
	fake, client := world(t)
	fake.SetStopDelay(ec2fake.Never)
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active", FenceTimeout: Duration(100 * time.Millisecond)})
	h.poll = 10 * time.Millisecond
	start := time.Now()
	err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v; fence_timeout is 100ms", elapsed)
	}
	if !errors.Is(err, ErrFenceFailed) {
		t.Fatalf("error %v: want ErrFenceFailed", err)
	}
	if !strings.Contains(err.Error(), "i-active still stopping after 100ms") {
		t.Errorf("error %q does not say what the instance is doing", err)
	}
	if slices.Contains(fake.Actions(), "AssociateAddress") {
		t.Error("moved the address although the fence failed")
	}
	rep := h.LastReport()
	if f := rep.Fence; f == nil || f.Fenced || f.To != "stopping" || f.Error == "" {
		t.Errorf("fence report %+v", rep.Fence)
	}
	if m := rep.Moves[0]; m.State != MoveNotTried || m.From != "i-active" {
		t.Errorf("move %v: want not_tried", m)
	}
}

func TestFenceFailedButContinue(t *testing.T) {
	fake, client := world(t)
	fake.Deny("StopInstances")
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active", ContinueIfFenceFailed: true})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("continue_if_fence_failed: %v", err)
	}
	if !kinds[0].moved(fake) {
		t.Error("not moved")
	}
	f := h.LastReport().Fence
	if f == nil || f.Fenced || !strings.Contains(f.Error, "UnauthorizedOperation") {
		t.Errorf("fence report %+v: want the failure recorded", f)
	}
}

func TestFenceAlreadyStopped(t *testing.T) {
	fake, client := world(t)
	fake.AddInstance(ec2fake.Instance{ID: "i-active", AZ: "us-east-1a", State: "stopped"})
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active"})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	// Described first: a stopped instance is fenced without StopInstances.
	want := []string{"DescribeAddresses", "DescribeInstances", "AssociateAddress", "DescribeAddresses"}
	if got := fake.Actions(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestFenceConfigRefusesTheStandby(t *testing.T) {
	cfg := ElasticIPConfig{AllocationID: "eipalloc-1", InstanceID: "i-standby", FenceConfig: FenceConfig{FenceInstanceID: "i-standby"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "fence_instance_id: is the standby") {
		t.Errorf("Validate: %v", err)
	}
}

// A spot reclaim or an auto-scaling termination: the old active is
// already terminated. It is fenced; StopInstances (which EC2 refuses with
// IncorrectInstanceState) is never sent, and the address moves.
func TestFenceTerminatedActiveEIPMoves(t *testing.T) {
	fake, client := world(t)
	fake.Terminate("i-active", 0)
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active"})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("Handle with the old active terminated: %v", err)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" {
		t.Errorf("the Elastic IP is on %q, want i-standby", a.InstanceID)
	}
	if ops := fake.Actions(); slices.Contains(ops, "StopInstances") {
		t.Errorf("calls %v: a terminated instance needs no StopInstances", ops)
	}
	if f := h.LastReport().Fence; f == nil || !f.Fenced || f.From != "terminated" {
		t.Errorf("fence report %+v", f)
	}
}

// shutting-down is on its way to terminated: the fence waits for it.
func TestFenceShuttingDownWaitsForTerminated(t *testing.T) {
	fake, client := world(t)
	fake.Terminate("i-active", 150*time.Millisecond)
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active", FenceTimeout: Duration(5 * time.Second)})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("Handle with the old active shutting down: %v", err)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" {
		t.Errorf("the Elastic IP is on %q, want i-standby", a.InstanceID)
	}
	ops := fake.Actions()
	if slices.Contains(ops, "StopInstances") {
		t.Errorf("calls %v: a shutting-down instance needs no StopInstances", ops)
	}
	if assoc := slices.Index(ops, "AssociateAddress"); assoc < 0 || fake.Instance("i-active").State != "terminated" {
		t.Errorf("calls %v", ops)
	}
	if f := h.LastReport().Fence; f == nil || !f.Fenced || f.From != "shutting-down" || f.To != "terminated" {
		t.Errorf("fence report %+v", f)
	}
	// Stuck shutting down past fence_timeout: a failed fence, no move.
	populate(fake)
	fake.Terminate("i-active", ec2fake.Never)
	h = fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active", FenceTimeout: Duration(100 * time.Millisecond)})
	h.fence.poll = 10 * time.Millisecond
	err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
	if !errors.Is(err, ErrFenceFailed) || !strings.Contains(err.Error(), "i-active still shutting-down after 100ms") {
		t.Errorf("stuck shutting-down: %v", err)
	}
}

// The instance is terminated between the DescribeInstances and the
// StopInstances: EC2 answers IncorrectInstanceState, and describing it
// again resolves that it is fenced.
func TestFenceIncorrectInstanceStateResolvedByDescribe(t *testing.T) {
	fake, client := world(t)
	fake.Inject("StopInstances", ec2fake.Fault{Pass: true, Before: func() { fake.Terminate("i-active", 0) }})
	h := fencedEIP(t, client, FenceConfig{FenceInstanceID: "i-active"})
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	var codes []string
	for _, c := range fake.Calls() {
		codes = append(codes, c.Action+":"+c.Code)
	}
	want := []string{"DescribeAddresses:", "DescribeInstances:", "StopInstances:IncorrectInstanceState", "DescribeInstances:", "AssociateAddress:", "DescribeAddresses:"}
	if !slices.Equal(codes, want) {
		t.Errorf("calls %v, want %v", codes, want)
	}
	if f := h.LastReport().Fence; f == nil || !f.Fenced || f.From != "running" || f.To != "terminated" {
		t.Errorf("fence report %+v", f)
	}
}
