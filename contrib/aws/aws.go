package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/fstaid/fstaid"
)

// Defaults of the client settings.
const (
	// DefaultMaxAttempts is how many times the SDK's retryer tries one
	// API call (the SDK's own default is 3; a failover would rather keep
	// trying until the handler's timeout).
	DefaultMaxAttempts = 10
	// DefaultMaxBackoff caps the retryer's exponential backoff.
	DefaultMaxBackoff = 2 * time.Second
)

// NewRetryer returns the SDK's standard retryer with its client-side
// rate limiter off (ratelimit.None: a failover must never be refused by
// our own retry-token bucket after a few throttles), maxAttempts tries per
// call (DefaultMaxAttempts when < 1) and backoff capped at maxBackoff
// (DefaultMaxBackoff when <= 0). It retries throttling
// (RequestLimitExceeded), 5xx answers and transport errors; the context
// deadline of the handler bounds it, backoff sleeps included. It is the
// only retry loop: handlers never retry a failed call themselves.
func NewRetryer(maxAttempts int, maxBackoff time.Duration) aws.Retryer {
	if maxAttempts < 1 {
		maxAttempts = DefaultMaxAttempts
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.Backoff = retry.NewExponentialJitterBackoff(maxBackoff)
		o.RateLimiter = ratelimit.None
	})
}

// NewClient returns an EC2 client for the handlers: credentials from the
// SDK's default chain (environment, shared files, SSO, the instance
// role through IMDS, ...), the region from cfg.Region or else the chain
// (AWS_REGION, the profile), cfg.Profile as the shared-config profile,
// cfg.Endpoint as the endpoint (a VPC interface endpoint, or a test
// server), and the retryer of NewRetryer. optFns adjust the client last.
func NewClient(ctx context.Context, cfg ClientConfig, optFns ...func(*ec2.Options)) (*ec2.Client, error) {
	loads := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return NewRetryer(cfg.MaxAttempts, time.Duration(cfg.MaxBackoff))
		}),
	}
	if cfg.Region != "" {
		loads = append(loads, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(cfg.Profile))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("aws: loading the SDK configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("aws: no region: set region in the [aws] section or AWS_REGION")
	}
	return ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		for _, f := range optFns {
			f(o)
		}
	}), nil
}

// Errors of the handlers, for errors.Is. An *APIError matches the one
// its code belongs to.
var (
	// ErrUnauthorized: the credentials' IAM policy does not allow the
	// call (UnauthorizedOperation, AccessDenied, AuthFailure).
	ErrUnauthorized = errors.New("aws: not authorized")
	// ErrNotFound: the resource does not exist in the client's region
	// (Invalid*ID.NotFound and the like; a wrong region looks the same).
	ErrNotFound = errors.New("aws: resource not found")
	// ErrNotInPlace: the confirming Describe did not show the resource
	// where it was moved to within the bound.
	ErrNotInPlace = errors.New("aws: move not confirmed")
	// ErrFenceFailed: fencing the old active did not stop it in time.
	ErrFenceFailed = errors.New("aws: fencing failed")
	// ErrHalfDone: an ENI was detached from the old active but is not
	// attached to the standby. Running the handler again completes it.
	ErrHalfDone = errors.New("aws: ENI move half done")
	// ErrStandbyUnfit: the standby cannot take the resource (an ENI in
	// another availability zone, a standby that is not running, its
	// device index in use), found before anything was changed.
	ErrStandbyUnfit = errors.New("aws: the standby cannot take it")
	// ErrMayChange marks a problem Validate found that may go away
	// before a failover (a stopped standby, a device index in use, a
	// route not yet created, the source/destination check, an EC2 call
	// that failed); see SplitProblems.
	ErrMayChange = errors.New("aws: may change before a failover")
)

// changeable is a problem that may change before a failover.
type changeable struct{ error }

func (c changeable) Unwrap() error        { return c.error }
func (c changeable) Is(target error) bool { return target == ErrMayChange }

func mayChange(err error) error { return changeable{err} }

// SplitProblems splits what a handler's Validate returned into the
// problems that can never work with this configuration (a standby in
// another availability zone than the ENI, an address outside the
// standby's subnet, a primary interface, a resource not found — IDs are
// never reused, and a wrong region looks the same) and those that may
// change before a failover (ErrMayChange, and EC2 calls that failed
// otherwise: throttled, unreachable, not authorized). fstaidd refuses to
// start on the first and warns about the second.
func SplitProblems(err error) (never, mayChangeProblems []error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ae *APIError
		switch {
		case errors.Is(e, ErrMayChange):
			mayChangeProblems = append(mayChangeProblems, e)
		case errors.As(e, &ae) && !errors.Is(e, ErrNotFound):
			mayChangeProblems = append(mayChangeProblems, e)
		default:
			never = append(never, e)
		}
	}
	return never, mayChangeProblems
}

// APIError is a failed EC2 call, naming the resource it was about.
type APIError struct {
	// Operation is the EC2 action, e.g. AssociateAddress.
	Operation string
	// Resource names what the call was about (an allocation, an ENI, a
	// route), as the handler's configuration does.
	Resource string
	// Region is the client's region.
	Region string
	// Code is the EC2 error code, empty when the call never got an answer
	// (deadline, network).
	Code string
	// Attempts is how many attempts the SDK's retryer made.
	Attempts int
	// Err is the SDK's error.
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.Operation, e.Resource)
	msg := e.Err.Error()
	var ae smithy.APIError
	if errors.As(e.Err, &ae) {
		msg = ae.ErrorMessage()
	}
	switch {
	case e.is(ErrUnauthorized):
		fmt.Fprintf(&b, "not authorized (%s): the IAM policy must allow ec2:%s: %s", e.Code, e.Operation, msg)
	case e.is(ErrNotFound):
		fmt.Fprintf(&b, "not found in region %s (%s; a wrong region looks the same): %s", e.Region, e.Code, msg)
	case e.Code != "":
		fmt.Fprintf(&b, "%s: %s", e.Code, msg)
	default:
		b.WriteString(msg)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// Is matches ErrUnauthorized and ErrNotFound by code.
func (e *APIError) Is(target error) bool { return e.is(target) }

func (e *APIError) is(target error) bool {
	switch target {
	case ErrUnauthorized:
		switch e.Code {
		case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId":
			return true
		}
	case ErrNotFound:
		return strings.HasSuffix(e.Code, ".NotFound") || strings.HasSuffix(e.Code, ".Malformed") && strings.HasPrefix(e.Code, "Invalid")
	}
	return false
}

// Report is what one run of a handler did: what it fenced, what moved
// from where to where, and every EC2 call with its duration. Handlers
// keep the last one (LastReport), return it inside their *Error on
// failure, and log it at the end of Handle (one line, structured: the
// Report is a slog.LogValuer). It marshals to JSON for a failover record.
type Report struct {
	// Handler is the handler's kind ("elastic_ip", "eni", "secondary_ip",
	// "route_table") and Name its configured name.
	Handler string `json:"handler"`
	Name    string `json:"name,omitempty"`
	// Region is the client's region.
	Region string `json:"region,omitempty"`
	// Start and Duration time the whole run.
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Fence is the fencing step, nil when fencing is not configured.
	Fence *FenceReport `json:"fence,omitempty"`
	// Moves lists each resource the handler was to move.
	Moves []Move `json:"moves"`
	// Calls lists every EC2 call, in order.
	Calls []Call `json:"calls"`
	// Error is the run's error, empty on success.
	Error string `json:"error,omitempty"`
}

// Move states.
const (
	MoveMoved     = "moved"       // moved and confirmed
	MoveInPlace   = "in_place"    // already where it should be: nothing done
	MoveFailed    = "failed"      // not moved (see the Report's Error)
	MoveDetached  = "detached"    // ENI: detached from the old active, not attached to the standby
	MoveNotTried  = "not_tried"   // not attempted (fencing failed, an earlier step failed)
	MoveUnconfirm = "unconfirmed" // the change was accepted but not seen in place in time
)

// Move is one resource's move.
type Move struct {
	// Resource is what moves: an allocation ID, an ENI, a private IP, or
	// a route as "rtb-...:10.0.0.10/32".
	Resource string `json:"resource"`
	// From is where it was (an instance, an ENI, "eni-...:10.0.0.10"),
	// empty when it was nowhere.
	From string `json:"from"`
	// To is where it goes.
	To string `json:"to"`
	// State is one of the Move* constants.
	State string `json:"state"`
}

// FenceReport is the fencing step.
type FenceReport struct {
	InstanceID string `json:"instance_id"`
	// From is the instance's state before, To its last seen state.
	From string `json:"from"`
	To   string `json:"to"`
	// Fenced reports that the instance was seen stopped (or terminated).
	Fenced   bool          `json:"fenced"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// Call is one EC2 API call, retries included.
type Call struct {
	Operation string        `json:"operation"`
	Resource  string        `json:"resource"`
	Start     time.Time     `json:"start"`
	Duration  time.Duration `json:"duration_ns"`
	// Attempts is how many HTTP attempts the SDK's retryer made.
	Attempts int `json:"attempts"`
	// Code is the error code of the failed call ("DryRunOperation" for a
	// successful DryRun), or "error" when there was no answer.
	Code string `json:"code,omitempty"`
}

// LogValue logs the report as a group: handler, name, moves as
// "resource: from -> to (state)", fence, calls as
// "Operation resource duration xAttempts", and the duration.
func (r *Report) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("handler", r.Handler)}
	if r.Name != "" {
		attrs = append(attrs, slog.String("name", r.Name))
	}
	moves := make([]string, len(r.Moves))
	for i, m := range r.Moves {
		moves[i] = m.String()
	}
	attrs = append(attrs, slog.Any("moves", moves))
	if f := r.Fence; f != nil {
		attrs = append(attrs, slog.String("fence", fmt.Sprintf("%s: %s -> %s fenced=%t in %v", f.InstanceID, f.From, f.To, f.Fenced, f.Duration)))
	}
	calls := make([]string, len(r.Calls))
	for i, c := range r.Calls {
		calls[i] = c.String()
	}
	attrs = append(attrs, slog.Any("calls", calls), slog.Duration("duration", r.Duration))
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	return slog.GroupValue(attrs...)
}

func (m Move) String() string {
	from := m.From
	if from == "" {
		from = "(nowhere)"
	}
	return fmt.Sprintf("%s: %s -> %s (%s)", m.Resource, from, m.To, m.State)
}

func (c Call) String() string {
	s := fmt.Sprintf("%s %s %v x%d", c.Operation, c.Resource, c.Duration.Round(time.Microsecond), c.Attempts)
	if c.Code != "" {
		s += " " + c.Code
	}
	return s
}

func (r *Report) clone() *Report {
	if r == nil {
		return nil
	}
	c := *r
	c.Moves = append([]Move(nil), r.Moves...)
	c.Calls = append([]Call(nil), r.Calls...)
	if r.Fence != nil {
		f := *r.Fence
		c.Fence = &f
	}
	return &c
}

// Error is a failed handler run: Err says what failed, naming the
// resource; Report says what was done before (a fence, a detach) and
// every call.
type Error struct {
	Report *Report
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Report.Handler)
	if e.Report.Name != "" {
		b.WriteString(" " + e.Report.Name)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	var done []string
	for _, m := range e.Report.Moves {
		done = append(done, m.String())
	}
	if len(done) > 0 {
		b.WriteString(" [" + strings.Join(done, "; ") + "]")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// An Option adjusts a handler. Only this package makes Options; the
// constructors apply them in order.
type Option interface {
	apply(*base)
}

type optionFunc func(*base)

func (f optionFunc) apply(b *base) { f(b) }

// WithLogger sets the logger of a handler: it logs each run's Report at
// the end of Handle (Info on success, Error on failure) and fencing and
// waiting progress at Debug. Default: slog.Default(); nil discards.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(b *base) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		b.logger = l
	})
}

// WithReportFunc calls f with each run's Report when Handle returns (the
// daemon adds it to the failover record). Default: none; nil is none.
func WithReportFunc(f func(*Report)) Option {
	return optionFunc(func(b *base) { b.onReport = f })
}

// base is what every handler shares: the client, the logger, the last
// report and the fencing step.
type base struct {
	kind, name string
	client     *ec2.Client
	// logger carries the handler's kind and name; reportLogger does not
	// (the Report names them itself).
	logger, reportLogger *slog.Logger
	onReport             func(*Report)
	// onReadyCall counts a readiness run's calls (WithReadinessCalls).
	onReadyCall func(operation string)
	// fence is the fencing step the handler abides by: its own (from
	// its FenceConfig; ownFence) or its set's (Config.Handlers); nil
	// without fencing.
	fence    *Fence
	ownFence bool
	poll     time.Duration
	timeout  time.Duration

	mu   sync.Mutex
	last *Report
}

// handlerSettings is what a handler's configuration gives its
// constructor beyond its own settings.
type handlerSettings interface {
	Validate() error
	// handler returns the handler's kind, its name (Name, else what it
	// moves), its fencing and its waits.
	handler() (kind, name string, fence FenceConfig, wait WaitConfig)
}

// setup is every constructor's common part: cfg's problems first (all of
// them), then a client, then init.
func (b *base) setup(cfg handlerSettings, client *ec2.Client, opts []Option) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if client == nil {
		return errors.New("aws: nil EC2 client")
	}
	kind, name, fence, wait := cfg.handler()
	b.init(kind, name, client, fence, wait, opts)
	return nil
}

func (b *base) init(kind, name string, client *ec2.Client, fence FenceConfig, wait WaitConfig, opts []Option) {
	b.kind, b.name, b.client, b.logger, b.poll = kind, name, client, slog.Default(), wait.PollInterval.or(DefaultPollInterval)
	b.timeout = wait.Timeout.or(DefaultTimeout)
	for _, o := range opts {
		o.apply(b)
	}
	b.reportLogger = b.logger
	b.logger = b.logger.With("handler", kind, "name", name)
	if fence.FenceInstanceID != "" {
		b.fence, b.ownFence = newFence(fence, client, wait.PollInterval, opts), true
	}
}

// LastReport returns a copy of the last run's Report (Handle, not DryRun
// or Validate), nil before the first.
func (b *base) LastReport() *Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last.clone()
}

// run is one run of a handler: it records the calls.
type run struct {
	b      *base
	report *Report
	mu     sync.Mutex
}

func (b *base) newRun() *run {
	return &run{b: b, report: &Report{Handler: b.kind, Name: b.name, Region: b.client.Options().Region, Start: time.Now(), Moves: []Move{}, Calls: []Call{}}}
}

// finish ends a run: it times it, keeps and logs the report, and wraps
// err in an *Error.
func (r *run) finish(ctx context.Context, err error) error {
	rep := r.report
	rep.Duration = time.Since(rep.Start)
	if err != nil {
		rep.Error = err.Error()
	}
	r.b.mu.Lock()
	r.b.last = rep.clone()
	r.b.mu.Unlock()
	if r.b.onReport != nil {
		r.b.onReport(rep.clone())
	}
	if err != nil {
		r.b.reportLogger.LogAttrs(ctx, slog.LevelError, "aws handler failed", slog.Any("report", rep))
		return &Error{Report: rep.clone(), Err: err}
	}
	r.b.reportLogger.LogAttrs(ctx, slog.LevelInfo, "aws handler done", slog.Any("report", rep))
	return nil
}

// attemptCounter counts the HTTP attempts of one call: it sits at the
// end of the Finalize step, after the retry middleware, so it runs once
// per attempt.
type attemptCounter struct{ n *int }

func (attemptCounter) ID() string { return "fstaidAttemptCounter" }

func (a attemptCounter) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	*a.n++
	return next.HandleFinalize(ctx, in)
}

func countAttempts(n *int) func(*ec2.Options) {
	return func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Add(attemptCounter{n}, middleware.After)
		})
	}
}

// call makes one EC2 call through the SDK (whose retryer is the only
// retry loop), records it in the run's report, and wraps its error in
// an *APIError naming the resource.
func call[In, Out any](ctx context.Context, r *run, op, resource string, fn func(context.Context, In, ...func(*ec2.Options)) (Out, error), in In) (Out, error) {
	attempts := 0
	start := time.Now()
	out, err := fn(ctx, in, countAttempts(&attempts))
	c := Call{Operation: op, Resource: resource, Start: start, Duration: time.Since(start), Attempts: attempts}
	if err != nil {
		ae := &APIError{Operation: op, Resource: resource, Region: r.b.client.Options().Region, Attempts: attempts, Err: err}
		var se smithy.APIError
		if errors.As(err, &se) {
			ae.Code = se.ErrorCode()
		}
		c.Code = ae.Code
		if c.Code == "" {
			c.Code = "error"
		}
		err = ae
	}
	r.mu.Lock()
	r.report.Calls = append(r.report.Calls, c)
	r.mu.Unlock()
	if f := r.b.onReadyCall; f != nil && ctx.Value(readinessKey{}) != nil {
		for range attempts {
			f(op)
		}
	}
	return out, err
}

// DefaultPollInterval is how often a handler polls a Describe call while
// waiting for a state (detached, stopped, confirmed).
const DefaultPollInterval = time.Second

// waitFor polls check every poll until it reports done, the bound
// passes, or ctx ends. check's error ends the wait at once (the SDK
// already retried it). It returns whether done was reached.
func (b *base) waitFor(ctx context.Context, bound time.Duration, check func(ctx context.Context) (bool, error)) (bool, error) {
	deadline := time.Now().Add(bound)
	t := time.NewTimer(bound)
	defer t.Stop()
	for {
		done, err := check(ctx)
		if err != nil || done {
			return done, err
		}
		wait := min(b.poll, time.Until(deadline))
		if wait <= 0 {
			return false, nil
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// dryRunResult turns a DryRun call's outcome into nil (DryRunOperation:
// allowed) or the error naming the resource.
func dryRunResult(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "DryRunOperation" {
		return nil
	}
	if err == nil {
		return errors.New("DryRun call succeeded without DryRunOperation: the endpoint ignored DryRun")
	}
	return err
}

// Handler is what every handler of this package implements beyond
// fstaid.Handler.
type Handler interface {
	fstaid.Handler
	// Name is the configured name, or a default naming the resource.
	Name() string
	// DryRun checks with DryRun calls that the credentials may make every
	// call the handler makes (DryRunOperation = allowed), and returns
	// every refusal, each naming the operation and the resource.
	DryRun(ctx context.Context) error
	// Validate checks at start-up that the resources exist and fit
	// together (availability zone, subnet, routes, source/dest check),
	// and returns every problem.
	Validate(ctx context.Context) error
	// Ready runs DryRun and Validate for a readiness run
	// (fstaid.WithReadiness) and returns their findings as problems,
	// each naming its resource and, when refused, the action.
	fstaid.ReadinessCheck
	// LastReport returns the last Handle's report, nil before the first.
	LastReport() *Report
	// Timeout is the configured bound of one Handle (the timeout key).
	Timeout() time.Duration
}

func (b *base) Name() string { return b.name }

func (b *base) Timeout() time.Duration { return b.timeout }

// Report returns LastReport, so that the Monitor keeps it in the
// failover record (fstaid.Reporter).
func (b *base) Report() any {
	if r := b.LastReport(); r != nil {
		return r
	}
	return nil
}

// str dereferences a possibly nil string.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
