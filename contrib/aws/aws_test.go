package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// TestSplitProblems: Validate's problems that can never work are apart
// from those that may change before a failover.
func TestSplitProblems(t *testing.T) {
	fake, client := world(t)
	fake.AddInstance(ec2fake.Instance{ID: "i-far", AZ: "us-east-1b", SubnetID: "subnet-b", VPCID: "vpc-1", State: "stopped"})
	h, _ := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-far"}, client, quiet(t))
	never, may := SplitProblems(h.Validate(ctxTimeout(t, 10*time.Second)))
	if len(never) != 1 || !strings.Contains(never[0].Error(), "availability zone") {
		t.Errorf("never: %v", never)
	}
	if len(may) != 1 || !strings.Contains(may[0].Error(), "i-far is stopped") || !errors.Is(may[0], ErrMayChange) {
		t.Errorf("may change: %v", may)
	}
	// Not found never works; an EC2 call that failed otherwise may.
	h, _ = NewENI(ENIConfig{NetworkInterfaceID: "eni-gone", InstanceID: "i-standby"}, client, quiet(t))
	if never, may := SplitProblems(h.Validate(ctxTimeout(t, 10*time.Second))); len(never) != 1 || !errors.Is(never[0], ErrNotFound) || len(may) != 0 {
		t.Errorf("not found: never %v, may change %v", never, may)
	}
	fake.Deny("DescribeInstances")
	h, _ = NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-standby"}, client, quiet(t))
	if never, may := SplitProblems(h.Validate(ctxTimeout(t, 10*time.Second))); len(never) != 0 || len(may) != 1 || !errors.Is(may[0], ErrUnauthorized) {
		t.Errorf("denied: never %v, may change %v", never, may)
	}
}

func TestNewClientDefaultChainAndRetryer(t *testing.T) {
	fake, _ := world(t)
	client, err := NewClient(context.Background(), ClientConfig{Region: "us-east-1", Endpoint: fake.URL, MaxAttempts: 4, MaxBackoff: Duration(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if client.Options().Region != "us-east-1" {
		t.Errorf("region %q", client.Options().Region)
	}
	r := client.Options().Retryer
	if r.MaxAttempts() != 4 {
		t.Errorf("MaxAttempts %d", r.MaxAttempts())
	}
	// The rate limiter is off: many throttles in a row never exhaust a
	// retry-token bucket (the SDK's default would refuse retries after
	// 500 tokens at 5 per retry).
	std, ok := r.(*retry.Standard)
	if !ok {
		t.Fatalf("retryer %T", r)
	}
	for range 1000 {
		if _, err := std.GetRetryToken(context.Background(), &retry.MaxAttemptsError{}); err != nil {
			t.Fatalf("retry token refused: %v; want ratelimit.None", err)
		}
	}
	for range 3 {
		fake.Inject("DescribeAddresses", ec2fake.Throttle)
	}
	h, err := NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-1", InstanceID: "i-standby", WaitConfig: fastWait}, client, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
		t.Fatal(err)
	}
	if a := h.LastReport().Calls[0].Attempts; a != 4 {
		t.Errorf("attempts %d, want 4", a)
	}
	for _, c := range fake.Calls() {
		if c.Region != "us-east-1" {
			t.Errorf("signed for %q", c.Region)
		}
	}

	// No region anywhere is a clear error.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, err := NewClient(context.Background(), ClientConfig{}); err == nil || !strings.Contains(err.Error(), "no region") {
		t.Errorf("NewClient without a region: %v", err)
	}
}
