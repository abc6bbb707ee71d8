package aws

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// kind describes one handler for the scenarios every handler must pass.
type kind struct {
	name string
	// make builds the handler on client.
	make func(t testing.TB, client *ec2.Client, opts ...Option) Handler
	// moved reports whether the fake shows the resources on the standby.
	moved func(fake *ec2fake.Server) bool
	// mutating is the action that moves (throttled, denied).
	mutating string
	// happy is the calls of a move on the happy path.
	happy []string
	// resource must appear in a permission error.
	resource string
}

var kinds = []kind{
	{
		name: "elastic_ip",
		make: func(t testing.TB, c *ec2.Client, opts ...Option) Handler {
			h, err := NewElasticIP(ElasticIPConfig{AllocationID: "eipalloc-1", InstanceID: "i-standby", WaitConfig: fastWait}, c, append([]Option{quiet(t)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return h
		},
		moved: func(f *ec2fake.Server) bool {
			a := f.Address("eipalloc-1")
			return a.InstanceID == "i-standby" && a.NetworkInterfaceID == "eni-standby0" && a.PrivateIP == "10.0.1.20"
		},
		mutating: "AssociateAddress",
		happy:    []string{"DescribeAddresses", "AssociateAddress", "DescribeAddresses"},
		resource: "eipalloc-1",
	},
	{
		name: "eni",
		make: func(t testing.TB, c *ec2.Client, opts ...Option) Handler {
			h, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-float", InstanceID: "i-standby", DeviceIndex: 1,
				DetachTimeout: Duration(time.Second), AttachTimeout: Duration(time.Second), PollInterval: Duration(5 * time.Millisecond)}, c, append([]Option{quiet(t)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return h
		},
		moved: func(f *ec2fake.Server) bool {
			a := f.Interface("eni-float").Attachment
			return a != nil && a.InstanceID == "i-standby" && a.Status == "attached" && a.DeviceIndex == 1
		},
		mutating: "DetachNetworkInterface",
		happy:    []string{"DescribeNetworkInterfaces", "DescribeInstances", "DetachNetworkInterface", "DescribeNetworkInterfaces", "AttachNetworkInterface", "DescribeNetworkInterfaces"},
		resource: "eni-float",
	},
	{
		name: "secondary_ip",
		make: func(t testing.TB, c *ec2.Client, opts ...Option) Handler {
			h, err := NewSecondaryIP(SecondaryIPConfig{PrivateIPAddresses: []string{"10.0.1.100", "10.0.1.101"}, NetworkInterfaceID: "eni-standby0", WaitConfig: fastWait}, c, append([]Option{quiet(t)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return h
		},
		moved: func(f *ec2fake.Server) bool {
			s, a := f.Interface("eni-standby0").PrivateIPs, f.Interface("eni-active0").PrivateIPs
			return slices.Contains(s, "10.0.1.100") && slices.Contains(s, "10.0.1.101") && !slices.Contains(a, "10.0.1.100") && !slices.Contains(a, "10.0.1.101")
		},
		mutating: "AssignPrivateIpAddresses",
		happy:    []string{"DescribeNetworkInterfaces", "AssignPrivateIpAddresses", "DescribeNetworkInterfaces"},
		resource: "eni-standby0",
	},
	{
		name: "route_table",
		make: func(t testing.TB, c *ec2.Client, opts ...Option) Handler {
			h, err := NewRouteTable(RouteTableConfig{RouteTableIDs: []string{"rtb-1", "rtb-2"}, DestinationCIDRBlocks: []string{"10.0.255.10/32"}, NetworkInterfaceID: "eni-standby0", WaitConfig: fastWait}, c, append([]Option{quiet(t)}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			return h
		},
		moved: func(f *ec2fake.Server) bool {
			for _, id := range []string{"rtb-1", "rtb-2"} {
				for _, r := range f.RouteTable(id).Routes {
					if r.Destination == "10.0.255.10/32" && (r.NetworkInterfaceID != "eni-standby0" || r.InstanceID != "i-standby") {
						return false
					}
				}
			}
			return true
		},
		mutating: "ReplaceRoute",
		happy:    []string{"DescribeRouteTables", "ReplaceRoute", "ReplaceRoute", "DescribeRouteTables"},
		resource: "rtb-1:10.0.255.10/32",
	},
}

var autoEvent = &fstaid.Event{Reason: fstaid.ReasonAuto, Target: "db"}

func TestMoveThenAlreadyInPlace(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			var reported []*Report
			h := k.make(t, client, WithReportFunc(func(r *Report) { reported = append(reported, r) }))
			if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if !k.moved(fake) {
				t.Fatalf("not moved on the fake")
			}
			rep := h.LastReport()
			if got := operations(rep); !slices.Equal(got, k.happy) {
				t.Errorf("calls = %v, want %v (the happy path)", got, k.happy)
			}
			if !rep.Moved() || rep.Error != "" {
				t.Errorf("report: %+v", rep)
			}
			for _, m := range rep.Moves {
				if m.State != MoveMoved || m.From == "" || m.From == m.To {
					t.Errorf("move %v: want moved from the active", m)
				}
			}
			for _, c := range rep.Calls {
				if c.Duration <= 0 || c.Attempts != 1 || c.Code != "" {
					t.Errorf("call %v: want a duration, one attempt, no error", c)
				}
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Errorf("report does not marshal: %v", err)
			}

			// Second run: already in place, one Describe, nothing moved.
			fake.ResetCalls()
			if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
				t.Fatalf("Handle again: %v", err)
			}
			if got, want := fake.Actions(), k.happy[:1]; !slices.Equal(got, want) {
				t.Errorf("already in place: calls %v, want %v", got, want)
			}
			for _, m := range h.LastReport().Moves {
				if m.State != MoveInPlace || m.From != m.To {
					t.Errorf("already in place: move %v", m)
				}
			}
			if len(reported) != 2 {
				t.Errorf("WithReportFunc called %d times, want 2", len(reported))
			}
		})
	}
}

func TestThrottledTwiceThenSuccess(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			fake.Inject(k.mutating, ec2fake.Throttle, ec2fake.Throttle)
			fake.Inject(k.happy[0], ec2fake.InternalError)
			h := k.make(t, client)
			if err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if !k.moved(fake) {
				t.Fatal("not moved")
			}
			rep := h.LastReport()
			// The SDK's retryer did the retries, inside one call each.
			if got := operations(rep); !slices.Equal(got, k.happy) {
				t.Errorf("calls = %v, want %v: retries belong to the SDK, not to a loop of ours", got, k.happy)
			}
			if rep.Calls[0].Attempts != 2 {
				t.Errorf("%s after one 500: %d attempts, want 2", rep.Calls[0].Operation, rep.Calls[0].Attempts)
			}
			i := slices.Index(operations(rep), k.mutating)
			if rep.Calls[i].Attempts != 3 {
				t.Errorf("%s throttled twice: %d attempts, want 3", k.mutating, rep.Calls[i].Attempts)
			}
			var throttled int
			for _, c := range fake.Calls() {
				if c.Code == "RequestLimitExceeded" {
					throttled++
				}
			}
			if throttled != 2 {
				t.Errorf("fake saw %d throttled requests, want 2", throttled)
			}
		})
	}
}

func TestPermissionDenied(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			fake.Deny(k.mutating)
			h := k.make(t, client)
			err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
			if err == nil {
				t.Fatal("Handle succeeded without the permission")
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("error %v: want ErrUnauthorized", err)
			}
			msg := err.Error()
			for _, want := range []string{k.mutating, k.resource, "UnauthorizedOperation", "ec2:" + k.mutating} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			var herr *Error
			if !errors.As(err, &herr) || herr.Report == nil || herr.Report.Error == "" {
				t.Fatalf("error %T carries no report", err)
			}
			var aerr *APIError
			if !errors.As(err, &aerr) || aerr.Code != "UnauthorizedOperation" || aerr.Attempts != 1 {
				t.Errorf("APIError %+v: want code UnauthorizedOperation after one attempt (not retried)", aerr)
			}
			if k.moved(fake) {
				t.Error("moved without permission?")
			}
			if h.LastReport().Moved() {
				t.Error("report says moved")
			}
		})
	}
}

func TestDeadlineMidRetry(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, _ := world(t)
			// The retryer would go on for 100 attempts; the deadline
			// stops it.
			client := newClient(t, fake, "us-east-1", NewRetryer(100, 20*time.Millisecond))
			for range 100 {
				fake.Inject(k.mutating, ec2fake.Throttle)
			}
			h := k.make(t, client)
			const deadline = 300 * time.Millisecond
			start := time.Now()
			err := h.Handle(ctxTimeout(t, deadline), autoEvent)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Handle succeeded under permanent throttling")
			}
			if elapsed > deadline+time.Second {
				t.Errorf("returned after %v, deadline %v", elapsed, deadline)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v: want context.DeadlineExceeded in the chain", err)
			}
			rep := h.LastReport()
			i := slices.Index(operations(rep), k.mutating)
			if i < 0 || rep.Calls[i].Attempts < 2 {
				t.Fatalf("calls %v: want %s retried by the SDK before the deadline", rep.Calls, k.mutating)
			}
			if !strings.Contains(err.Error(), k.mutating) {
				t.Errorf("error %q does not name the call", err)
			}
			if k.moved(fake) {
				t.Error("moved?")
			}
		})
	}
}

func TestWrongRegion(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, _ := world(t)
			client := newClient(t, fake, "eu-west-1", testRetryer())
			h := k.make(t, client)
			err := h.Handle(ctxTimeout(t, 10*time.Second), autoEvent)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("error %v: want ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), "not found in region eu-west-1") {
				t.Errorf("error %q does not name the region", err)
			}
			for _, c := range fake.Calls() {
				if c.Region != "eu-west-1" {
					t.Errorf("request signed for %q", c.Region)
				}
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			fake, client := world(t)
			h := k.make(t, client)
			if err := h.DryRun(ctxTimeout(t, 10*time.Second)); err != nil {
				t.Fatalf("DryRun with every permission: %v", err)
			}
			sawMutating := false
			for _, c := range fake.Calls() {
				if c.Action == k.mutating {
					sawMutating = true
				}
				if !c.DryRun && !strings.HasPrefix(c.Action, "Describe") {
					t.Errorf("%s sent without DryRun", c.Action)
				}
			}
			// AssignPrivateIpAddresses has no DryRun in the EC2 API.
			if !sawMutating && k.mutating != "AssignPrivateIpAddresses" {
				t.Errorf("DryRun did not check %s", k.mutating)
			}
			if k.moved(fake) {
				t.Error("DryRun moved something")
			}
			if k.mutating == "AssignPrivateIpAddresses" {
				return
			}
			fake.Deny(k.mutating)
			err := h.DryRun(ctxTimeout(t, 10*time.Second))
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), k.resource) || !strings.Contains(err.Error(), "ec2:"+k.mutating) {
				t.Errorf("DryRun without %s: %v; want ErrUnauthorized naming %s", k.mutating, err, k.resource)
			}
		})
	}
}

// TestFailedHandlerKeepsTheLock runs an Elastic IP move without the
// permission through the Monitor: the failover is recorded as failed and
// the lock stays.
func TestFailedHandlerKeepsTheLock(t *testing.T) {
	fake, client := world(t)
	fake.Deny("AssociateAddress")
	var rep *Report
	h := kinds[0].make(t, client, WithReportFunc(func(r *Report) { rep = r }))
	lock := fstaid.NewFileLock(t.TempDir() + "/fstaid.lock")
	m, err := fstaid.New(
		fstaid.WithPrimary(fstaid.CheckFunc(func(context.Context) error { return nil }), time.Second),
		fstaid.WithHandler("eip", h, 5*time.Second),
		fstaid.WithLock(lock),
		fstaid.WithLogger(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Fail(context.Background())
	if !errors.Is(err, fstaid.ErrHandlerFailed) {
		t.Fatalf("Fail: %v, want ErrHandlerFailed", err)
	}
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Fail: %v, want the handler's ErrUnauthorized inside", err)
	}
	if rec.State != fstaid.RecordHandlerFailed || len(rec.Handlers) != 1 || !strings.Contains(rec.Handlers[0].Error, "UnauthorizedOperation") {
		t.Errorf("record %+v", rec)
	}
	stored, err := lock.Load(context.Background())
	if err != nil || stored == nil {
		t.Fatalf("lock after a failed handler: %v, %v; want it kept", stored, err)
	}
	if stored.State != fstaid.RecordHandlerFailed {
		t.Errorf("stored record state %v", stored.State)
	}
	if rep == nil || rep.Error == "" || rep.Moves[0].State != MoveFailed || rep.Moves[0].From != "i-active" {
		t.Errorf("report %+v", rep)
	}
}

func TestValidateEveryHandlerOnAGoodWorld(t *testing.T) {
	for _, k := range kinds {
		_, client := world(t)
		if err := k.make(t, client).Validate(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Errorf("%s: Validate: %v", k.name, err)
		}
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
