package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fstaid/fstaid"
	awsx "github.com/fstaid/fstaid/contrib/aws"
)

// The [aws] section is decoded and validated by contrib/aws
// (awsx.DecodeSection); the daemon wires its handlers in.

// awsValidateTimeout bounds the start-up validation of the AWS
// resources: an EC2 that does not answer delays the start by at most
// this, and is only warned about.
const awsValidateTimeout = 20 * time.Second

// awsHandlers builds the configured AWS handlers for the daemon and
// validates their resources at start-up (Validate): what can never work
// (a standby in another availability zone than its ENI, an address
// outside the standby's subnet, a resource not found) is a configuration
// error (exit 78); what may change before a failover (a stopped standby,
// a device index in use, a route not yet created, an EC2 call that
// failed) is logged as a warning.
func (c *Config) awsHandlers(ctx context.Context, logger *slog.Logger, opts ...awsx.Option) ([]awsx.Handler, error) {
	hs, err := c.buildAWSHandlers(ctx, logger, opts...)
	if err != nil || len(hs) == 0 {
		return hs, err
	}
	vctx, cancel := context.WithTimeout(ctx, awsValidateTimeout)
	defer cancel()
	var errs []error
	for _, h := range hs {
		never, may := awsx.SplitProblems(h.Validate(vctx))
		for _, e := range may {
			logger.Warn("aws handler: a problem that must be gone before a failover", "handler", h.Name(), "problem", e)
		}
		for _, e := range never {
			errs = append(errs, fmt.Errorf("aws handler %s: %w", h.Name(), e))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", errConfig, errors.Join(errs...))
	}
	return hs, nil
}

// buildAWSHandlers builds the configured AWS handlers on one EC2 client
// (credentials and region from the SDK's default chain, or [aws]
// region), as one set (aws.Config.Handlers: one fence step first when
// any handler fences).
func (c *Config) buildAWSHandlers(ctx context.Context, logger *slog.Logger, opts ...awsx.Option) ([]awsx.Handler, error) {
	if c.AWS == nil || len(c.AWS.ElasticIP)+len(c.AWS.ENI)+len(c.AWS.SecondaryIP)+len(c.AWS.RouteTable) == 0 {
		return nil, nil
	}
	client, err := awsx.NewClient(ctx, c.AWS.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: [aws]: %w", errConfig, err)
	}
	hs, err := c.AWS.Handlers(client, append([]awsx.Option{awsx.WithLogger(logger)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	return hs, nil
}

// imdsCheck is the native IMDSv2 check, configured by [aws.imds].
func (c *Config) imdsCheck() (fstaid.Check, error) {
	var ic awsx.IMDSConfig
	if c.AWS != nil && c.AWS.IMDS != nil {
		ic = *c.AWS.IMDS
	}
	return awsx.NewIMDSCheck(ic)
}

// awsChecks is `fstaidd check`'s part for AWS: each handler's IAM
// permissions by DryRun calls (DryRunOperation = allowed) and its
// resources (same availability zone, subnet, routes, source/dest check).
func awsChecks(ctx context.Context, cfg *Config) []string {
	hs, err := cfg.buildAWSHandlers(ctx, discard)
	if err != nil {
		return []string{"PROBLEM: " + err.Error()}
	}
	var lines []string
	for _, h := range hs {
		if err := h.DryRun(ctx); err != nil {
			lines = append(lines, fmt.Sprintf("PROBLEM: aws handler %s: permissions (DryRun): %v", h.Name(), err))
		} else {
			lines = append(lines, fmt.Sprintf("aws handler %s: permissions OK (DryRun)", h.Name()))
		}
		if err := h.Validate(ctx); err != nil {
			never, may := awsx.SplitProblems(err)
			for _, e := range never {
				lines = append(lines, fmt.Sprintf("PROBLEM: aws handler %s: %v (fstaidd refuses to start)", h.Name(), e))
			}
			for _, e := range may {
				lines = append(lines, fmt.Sprintf("PROBLEM: aws handler %s: %v (must be fixed before a failover)", h.Name(), e))
			}
		} else {
			lines = append(lines, fmt.Sprintf("aws handler %s: resources OK (timeout %v)", h.Name(), h.Timeout()))
		}
	}
	return lines
}

var discard = slog.New(slog.DiscardHandler)
