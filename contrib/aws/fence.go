package aws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/fstaid/fstaid"
)

// DefaultFenceTimeout bounds the fencing of the old active.
const DefaultFenceTimeout = 2 * time.Minute

// fenceMargin is what a fence step's Timeout adds to its fence_timeout,
// so that the fence's own bound, not the step's, decides "not fenced in
// time".
const fenceMargin = 5 * time.Second

// FenceConfig optionally fences the old active before a move: it is
// described first (stopped or terminated: already fenced; shutting-down:
// wait for terminated), else stopped with a forced StopInstances and
// described until stopped. A fence that fails (an error, or not fenced
// within FenceTimeout) stops the moves, unless ContinueIfFenceFailed.
type FenceConfig struct {
	// FenceInstanceID is the old active instance to stop; empty: no
	// fencing.
	FenceInstanceID string `toml:"fence_instance_id"`
	// FenceTimeout bounds the whole fence, calls and waits. Default 2
	// minutes.
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
		p.Add("fence_instance_id", "required when fence_timeout or continue_if_fence_failed is set")
	}
}

// bound is the fence's bound, zero without fencing.
func (c *FenceConfig) bound() time.Duration {
	if c.FenceInstanceID == "" {
		return 0
	}
	return c.FenceTimeout.or(DefaultFenceTimeout)
}

func stateName(s *types.InstanceState) string {
	if s == nil {
		return ""
	}
	return string(s.Name)
}

func fenced(state string) bool { return state == "stopped" || state == "terminated" }

// Fence is the fencing step of a set of handlers (Config.Handlers): it
// fences the old active ONCE per failover, before any move, and every
// handler of the set abides by its outcome — after a failed fence none
// of them moves anything ("not moved: fencing failed"), unless
// continue_if_fence_failed. Config.Handlers puts it first; the handlers
// that follow it ask it for the outcome of the same failover (the same
// *fstaid.Event) and never fence again. Should a handler of the set run
// before the step (a library user who left it out), that handler runs the
// fence itself, once, and the others share its outcome.
//
// Handle returns an error (and the failover record shows it) when the
// fence failed and the moves were stopped; with continue_if_fence_failed
// it logs the failure and returns nil. Safe for concurrent use: callers
// for the same failover wait for one fence and share its outcome.
type Fence struct {
	base
	cfg FenceConfig

	fmu sync.Mutex
	cur *fenceAttempt
}

// fenceAttempt is one failover's fence: done closes when rep and err are
// final.
type fenceAttempt struct {
	ev   *fstaid.Event
	done chan struct{}
	rep  FenceReport
	err  error
}

var _ Handler = (*Fence)(nil)

func newFence(cfg FenceConfig, client *ec2.Client, poll Duration, opts []Option) *Fence {
	f := &Fence{cfg: cfg}
	f.init("fence", "aws.fence", client, FenceConfig{}, WaitConfig{PollInterval: poll, Timeout: Duration(cfg.bound() + fenceMargin)}, opts)
	return f
}

// Handle fences the old active for ev's failover (or joins the fence
// already run for it).
func (f *Fence) Handle(ctx context.Context, ev *fstaid.Event) error {
	r := f.newRun()
	rep, err := f.outcome(ctx, r, ev)
	r.report.Fence = &rep
	if err != nil && f.cfg.ContinueIfFenceFailed {
		f.logger.Error("fencing failed; the handlers move anyway (continue_if_fence_failed)", "instance", f.cfg.FenceInstanceID, "error", err)
		err = nil
	}
	return r.finish(ctx, err)
}

// outcome returns the fence of ev's failover, running it when nobody
// has: a nil error means fenced. r records the calls of a fence it runs.
// A nil ev is never shared: each such call fences.
func (f *Fence) outcome(ctx context.Context, r *run, ev *fstaid.Event) (FenceReport, error) {
	f.fmu.Lock()
	if a := f.cur; a != nil && ev != nil && a.ev == ev {
		f.fmu.Unlock()
		select {
		case <-a.done:
			return a.rep, a.err
		case <-ctx.Done():
			return FenceReport{InstanceID: f.cfg.FenceInstanceID, Error: ctx.Err().Error()},
				fmt.Errorf("%w: waiting for the fence of %s: %w", ErrFenceFailed, f.cfg.FenceInstanceID, ctx.Err())
		}
	}
	a := &fenceAttempt{ev: ev, done: make(chan struct{})}
	f.cur = a
	f.fmu.Unlock()
	a.rep, a.err = f.fence(ctx, r)
	close(a.done)
	return a.rep, a.err
}

// fence fences the instance within fence_timeout.
func (f *Fence) fence(ctx context.Context, r *run) (FenceReport, error) {
	id := f.cfg.FenceInstanceID
	rep := FenceReport{InstanceID: id}
	start := time.Now()
	bound := f.cfg.bound()
	fctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	err := f.stop(fctx, r, &rep)
	rep.Duration = time.Since(start)
	if err == nil {
		rep.Fenced = true
		f.logger.Info("fenced the old active", "instance", id, "from", rep.From, "to", rep.To, "duration", rep.Duration)
		return rep, nil
	}
	if fctx.Err() != nil {
		still := rep.To
		if still == "" {
			still = "in an unknown state"
		}
		switch {
		case ctx.Err() == nil:
			err = fmt.Errorf("instance %s still %s after %v (fence_timeout): %w", id, still, bound, err)
		default:
			err = fmt.Errorf("instance %s still %s when the handler's timeout ended: %w", id, still, err)
		}
	}
	rep.Error = err.Error()
	return rep, fmt.Errorf("%w: %w", ErrFenceFailed, err)
}

// stop fences the instance: describe it first (stopped or terminated is
// fenced; shutting-down only waits for terminated), StopInstances
// (forced) when it is running, pending or stopping, and poll until
// fenced. An IncorrectInstanceState answer (the instance was terminated
// meanwhile) is resolved by describing it again at once. It returns
// nil when fenced, else ctx's end or a call's error.
func (f *Fence) stop(ctx context.Context, r *run, rep *FenceReport) error {
	id := rep.InstanceID
	stopSent, resolved := false, false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		st, err := f.instanceState(ctx, r, id)
		if err != nil {
			return err
		}
		if rep.From == "" {
			rep.From = st
		}
		rep.To = st
		if fenced(st) {
			return nil
		}
		if st != "shutting-down" && !stopSent {
			out, err := call(ctx, r, "StopInstances", id, f.client.StopInstances, &ec2.StopInstancesInput{
				InstanceIds: []string{id}, Force: aws.Bool(true),
			})
			var ae *APIError
			switch {
			case errors.As(err, &ae) && ae.Code == "IncorrectInstanceState":
				f.logger.Info("StopInstances: IncorrectInstanceState; describing the instance", "instance", id, "state", st)
				if !resolved {
					resolved = true
					continue
				}
			case err != nil:
				return err
			default:
				stopSent = true
				for _, c := range out.StoppingInstances {
					if str(c.InstanceId) == id {
						rep.To = stateName(c.CurrentState)
					}
				}
				if fenced(rep.To) {
					return nil
				}
			}
		}
		f.logger.Debug("waiting for the fenced instance", "instance", id, "state", rep.To)
		t.Reset(f.poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Validate checks that the instance to fence exists.
func (f *Fence) Validate(ctx context.Context) error {
	_, err := f.describeInstance(ctx, f.newRun(), f.cfg.FenceInstanceID)
	return err
}

// DryRun checks that StopInstances and DescribeInstances are allowed.
func (f *Fence) DryRun(ctx context.Context) error {
	return errors.Join(f.dryRunFence(ctx, f.newRun(), f.cfg.FenceInstanceID)...)
}

// gate is what a move handler does before its first change: it asks its
// fence (its own, or its set's) for this failover's outcome and returns
// an error when the move must not go on. Without fencing it returns nil.
func (b *base) gate(ctx context.Context, r *run, ev *fstaid.Event) error {
	f := b.fence
	if f == nil {
		return nil
	}
	rep, err := f.outcome(ctx, r, ev)
	r.report.Fence = &rep
	if err == nil {
		return nil
	}
	if f.cfg.ContinueIfFenceFailed {
		b.logger.Error("fencing failed; moving anyway (continue_if_fence_failed)", "instance", f.cfg.FenceInstanceID, "error", err)
		return nil
	}
	return fmt.Errorf("not moved: %w", err)
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

// dryRunFence checks the fencing permissions on id.
func (b *base) dryRunFence(ctx context.Context, r *run, id string) []error {
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

// ownFenceDryRun and ownFenceValidate check a handler's own fence; a
// handler of a set leaves that to the set's Fence step.
func (b *base) ownFenceDryRun(ctx context.Context, r *run) []error {
	if b.fence == nil || !b.ownFence {
		return nil
	}
	return b.dryRunFence(ctx, r, b.fence.cfg.FenceInstanceID)
}

func (b *base) validateFence(ctx context.Context, r *run) error {
	if b.fence == nil || !b.ownFence {
		return nil
	}
	_, err := b.describeInstance(ctx, r, b.fence.cfg.FenceInstanceID)
	return err
}
