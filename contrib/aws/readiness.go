package aws

import (
	"context"
	"errors"
	"sync"

	"github.com/fstaid/fstaid"
)

// Readiness: every handler is a fstaid.ReadinessCheck. Its Ready runs
// the handler's DryRun (each call the failover would make, with DryRun
// set: refused means the IAM policy no longer allows it) and Validate
// (the resources exist and fit: the allocation, the standby running in
// the right availability zone and subnet, the routes, the
// source/destination check) in parallel, and turns what they find into
// problems, each naming its resource (and the refused action). A Monitor
// with fstaid.WithReadiness calls it between rounds; it changes nothing.

// ready reports why a failover through a handler would not work now:
// a refused DryRun is a fstaid.ProblemPermission naming the action and
// the resource, a resource missing or unfit a fstaid.ProblemResource,
// and a call that got no verdict (throttled, unreachable, cut short) a
// fstaid.ProblemUnverified.
func (b *base) ready(ctx context.Context, dryRun, validate func(context.Context) error) []fstaid.Problem {
	ctx = context.WithValue(ctx, readinessKey{}, true)
	var derr, verr error
	var wg sync.WaitGroup
	wg.Go(func() { derr = dryRun(ctx) })
	wg.Go(func() { verr = validate(ctx) })
	wg.Wait()
	return append(b.problems(derr), b.problems(verr)...)
}

// Ready checks the permissions and resources of the move (base.ready).
func (h *ElasticIP) Ready(ctx context.Context) []fstaid.Problem {
	return h.ready(ctx, h.DryRun, h.Validate)
}

// Ready checks the permissions and resources of the move (base.ready).
func (h *ENI) Ready(ctx context.Context) []fstaid.Problem { return h.ready(ctx, h.DryRun, h.Validate) }

// Ready checks the permissions and resources of the move (base.ready).
func (h *SecondaryIP) Ready(ctx context.Context) []fstaid.Problem {
	return h.ready(ctx, h.DryRun, h.Validate)
}

// Ready checks the permissions and resources of the move (base.ready).
func (h *RouteTable) Ready(ctx context.Context) []fstaid.Problem {
	return h.ready(ctx, h.DryRun, h.Validate)
}

// Ready checks the fencing permissions and that the instance to fence
// exists (base.ready).
func (f *Fence) Ready(ctx context.Context) []fstaid.Problem {
	return f.ready(ctx, f.DryRun, f.Validate)
}

// readinessKey marks the context of a readiness run, so that call counts
// its calls (WithReadinessCalls).
type readinessKey struct{}

// WithReadinessCalls calls f with the operation of every EC2 request a
// readiness run (Ready) sends, retries included (what EC2's rate limits
// count): the cost of readiness, which fstaidd counts in
// fstaid_readiness_aws_calls_total. f must be safe for concurrent use.
func WithReadinessCalls(f func(operation string)) Option {
	return optionFunc(func(b *base) { b.onReadyCall = f })
}

// problems turns what DryRun or Validate returned into readiness
// problems.
func (b *base) problems(err error) []fstaid.Problem {
	var ps []fstaid.Problem
	for _, e := range flatten(err) {
		p := fstaid.Problem{Kind: fstaid.ProblemResource, Resource: b.name, Message: e.Error()}
		var ae *APIError
		var re *resourceError
		switch {
		case errors.As(e, &ae):
			p.Resource, p.Action = ae.Resource, ae.Operation
			switch {
			case ae.is(ErrUnauthorized):
				p.Kind = fstaid.ProblemPermission
			case ae.is(ErrNotFound):
				p.Kind = fstaid.ProblemResource
			default:
				// Throttled, a 5xx, no answer: no verdict either way.
				p.Kind = fstaid.ProblemUnverified
			}
		case errors.As(e, &re):
			p.Resource = re.resource
		}
		ps = append(ps, p)
	}
	return ps
}

// flatten lists the errors errors.Join put together, depth first.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// resourceError names the resource a Validate problem is about, for
// readiness (an APIError names its own).
type resourceError struct {
	resource string
	error
}

func (e *resourceError) Unwrap() error { return e.error }

// about marks err as being about resource.
func about(resource string, err error) error { return &resourceError{resource, err} }

var (
	_ fstaid.ReadinessCheck = (*ElasticIP)(nil)
	_ fstaid.ReadinessCheck = (*ENI)(nil)
	_ fstaid.ReadinessCheck = (*SecondaryIP)(nil)
	_ fstaid.ReadinessCheck = (*RouteTable)(nil)
	_ fstaid.ReadinessCheck = (*Fence)(nil)
)
