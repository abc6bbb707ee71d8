package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DefaultFenceTimeout bounds the wait for a fenced instance to stop.
const DefaultFenceTimeout = 2 * time.Minute

// FenceConfig optionally fences the old active before a move: a forced
// StopInstances, then DescribeInstances until it is stopped. A fence that
// fails (an error, or not stopped within FenceTimeout) aborts the move,
// unless ContinueIfFenceFailed.
type FenceConfig struct {
	// FenceInstanceID is the old active instance to stop; empty: no
	// fencing.
	FenceInstanceID string `toml:"fence_instance_id"`
	// FenceTimeout bounds the wait for "stopped". Default 2 minutes.
	FenceTimeout Duration `toml:"fence_timeout"`
	// ContinueIfFenceFailed moves the address even when the fence failed
	// (the failure is still in the report and logged).
	ContinueIfFenceFailed bool `toml:"continue_if_fence_failed"`
}

func (c *FenceConfig) validate(p *problems) {
	if c.FenceInstanceID != "" {
		p.resourceID("fence_instance_id", c.FenceInstanceID, "i-")
	}
	p.nonNegative("fence_timeout", c.FenceTimeout)
	if c.FenceInstanceID == "" && (c.FenceTimeout != 0 || c.ContinueIfFenceFailed) {
		p.add("fence_instance_id", "required when fence_timeout or continue_if_fence_failed is set")
	}
}

func stateName(s *types.InstanceState) string {
	if s == nil {
		return ""
	}
	return string(s.Name)
}

func fenced(state string) bool { return state == "stopped" || state == "terminated" }

// doFence fences the old active if configured. It returns an error only
// when the move must not go on.
func (b *base) doFence(ctx context.Context, r *run) error {
	id := b.fence.FenceInstanceID
	if id == "" {
		return nil
	}
	rep := &FenceReport{InstanceID: id}
	r.report.Fence = rep
	start := time.Now()
	err := b.stop(ctx, r, rep)
	rep.Duration = time.Since(start)
	if err == nil {
		b.logger.Info("fenced the old active", "instance", id, "from", rep.From, "duration", rep.Duration)
		return nil
	}
	rep.Error = err.Error()
	err = fmt.Errorf("%w: %w", ErrFenceFailed, err)
	if b.fence.ContinueIfFenceFailed {
		b.logger.Error("fencing failed; moving anyway (continue_if_fence_failed)", "instance", id, "error", err)
		return nil
	}
	return err
}

func (b *base) stop(ctx context.Context, r *run, rep *FenceReport) error {
	id := rep.InstanceID
	out, err := call(ctx, r, "StopInstances", id, b.client.StopInstances, &ec2.StopInstancesInput{
		InstanceIds: []string{id}, Force: aws.Bool(true),
	})
	if err != nil {
		return err
	}
	for _, c := range out.StoppingInstances {
		if str(c.InstanceId) == id {
			rep.From, rep.To = stateName(c.PreviousState), stateName(c.CurrentState)
		}
	}
	if fenced(rep.To) {
		rep.Fenced = true
		return nil
	}
	bound := b.fence.FenceTimeout.or(DefaultFenceTimeout)
	ok, err := b.waitFor(ctx, bound, func(ctx context.Context) (bool, error) {
		st, err := b.instanceState(ctx, r, id)
		if err != nil {
			return false, err
		}
		rep.To = st
		return fenced(st), nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("instance %s still %s after %v (fence_timeout)", id, rep.To, bound)
	}
	rep.Fenced = true
	return nil
}

func (b *base) instanceState(ctx context.Context, r *run, id string) (string, error) {
	in, err := b.describeInstance(ctx, r, id)
	if err != nil {
		return "", err
	}
	return stateName(in.State), nil
}

func (b *base) describeInstance(ctx context.Context, r *run, id string) (*types.Instance, error) {
	out, err := call(ctx, r, "DescribeInstances", id, b.client.DescribeInstances, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return nil, err
	}
	for _, res := range out.Reservations {
		for i := range res.Instances {
			if str(res.Instances[i].InstanceId) == id {
				return &res.Instances[i], nil
			}
		}
	}
	return nil, &APIError{Operation: "DescribeInstances", Resource: id, Region: b.client.Options().Region, Code: "InvalidInstanceID.NotFound", Err: errors.New("not in the answer")}
}

// dryRunFence checks the fencing permissions.
func (b *base) dryRunFence(ctx context.Context, r *run) []error {
	id := b.fence.FenceInstanceID
	if id == "" {
		return nil
	}
	var errs []error
	_, err := call(ctx, r, "StopInstances", id, b.client.StopInstances, &ec2.StopInstancesInput{InstanceIds: []string{id}, Force: aws.Bool(true), DryRun: aws.Bool(true)})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	_, err = call(ctx, r, "DescribeInstances", id, b.client.DescribeInstances, &ec2.DescribeInstancesInput{InstanceIds: []string{id}, DryRun: aws.Bool(true)})
	if err := dryRunResult(err); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// validateFence checks that the instance to fence exists.
func (b *base) validateFence(ctx context.Context, r *run) error {
	if b.fence.FenceInstanceID == "" {
		return nil
	}
	_, err := b.describeInstance(ctx, r, b.fence.FenceInstanceID)
	return err
}
