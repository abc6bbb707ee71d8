package aws

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func newIMDS(t *testing.T, id string) *ec2fake.IMDS {
	t.Helper()
	m := ec2fake.NewIMDS(id)
	t.Cleanup(m.Close)
	return m
}

func TestIMDSFakeWantsAToken(t *testing.T) {
	m := newIMDS(t, "i-monitor")
	resp, err := http.Get(m.URL + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %s, want 401", resp.Status)
	}
}

func TestIMDSCheck(t *testing.T) {
	m := newIMDS(t, "i-monitor")
	// AWS_EC2_METADATA_DISABLED=true is set for the whole test binary: a
	// configured check must not be silenced by it.
	c, err := NewIMDSCheck(IMDSConfig{Endpoint: m.URL, InstanceID: "i-monitor"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 5*time.Second)
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if puts, gets := m.Counts(); puts != 1 || gets != 1 {
		t.Errorf("token PUTs %d, GETs %d; want 1 and 1", puts, gets)
	}
	// Tokens expire (or IMDS restarts): a 401 makes the client fetch a
	// new one.
	m.ExpireTokens()
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check after the token expired: %v", err)
	}
	if puts, _ := m.Counts(); puts != 2 {
		t.Errorf("token PUTs %d, want 2", puts)
	}
}

func TestIMDSCheckFailures(t *testing.T) {
	m := newIMDS(t, "i-other")
	c, err := NewIMDSCheck(IMDSConfig{Endpoint: m.URL, InstanceID: "i-monitor"})
	if err != nil {
		t.Fatal(err)
	}
	var ce *fstaid.CheckError
	err = c.Check(ctxTimeout(t, 5*time.Second))
	if !errors.As(err, &ce) || ce.ExitStatus != 1 || !strings.Contains(err.Error(), "instance-id is i-other, want i-monitor") {
		t.Errorf("wrong instance: %v", err)
	}

	m.SetDown(true)
	c, _ = NewIMDSCheck(IMDSConfig{Endpoint: m.URL})
	if err := c.Check(ctxTimeout(t, 5*time.Second)); !errors.As(err, &ce) || ce.ExitStatus != 1 {
		t.Errorf("IMDS down: %v", err)
	}

	// A hung IMDS: the check returns at its context's deadline.
	m.SetDown(false)
	m.SetLatency(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Check(ctx)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("hung IMDS: returned after %v", elapsed)
	}
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung IMDS: %v", err)
	}
}

func TestIMDSConfigValidate(t *testing.T) {
	if _, err := NewIMDSCheck(IMDSConfig{Endpoint: "169.254.169.254", InstanceID: "x"}); err == nil ||
		!strings.Contains(err.Error(), "endpoint:") || !strings.Contains(err.Error(), "instance_id:") {
		t.Errorf("NewIMDSCheck: %v", err)
	}
}
