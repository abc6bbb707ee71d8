// Package aws holds fstaid's built-in floating-IP handlers for AWS, on
// aws-sdk-go-v2, and an IMDSv2 self check. It lives in the contrib
// module so that importing the fstaid library never pulls in the SDK.
//
// # Handlers
//
//   - ElasticIP: associate an Elastic IP with the standby instance or ENI
//     (AssociateAddress with AllowReassociation), confirmed with
//     DescribeAddresses.
//   - ENI: detach a network interface from the dead active (forced), wait
//     until it is available, attach it to the standby, confirm.
//   - SecondaryIP: AssignPrivateIpAddresses with AllowReassignment to the
//     standby's ENI, confirmed.
//   - RouteTable: ReplaceRoute of existing routes in one or more tables
//     to the standby's ENI, confirmed with DescribeRouteTables.
//
// Each can fence the old active first: described first (stopped or
// terminated is fenced, shutting-down waits for terminated), else
// StopInstances forced and a wait for "stopped", all within
// fence_timeout. Config.Handlers builds the handlers as one set with a
// single Fence step first, so the old active is fenced once per failover
// before any move, and a failed fence stops every move of the set unless
// continue_if_fence_failed. Each is idempotent: a resource already where
// it should be is success, and an ENI move cut between detach and attach
// is completed by the next run.
//
// Each has a Config type with toml tags for fstaidd.toml and a Validate
// of its own that names every bad key, a New... constructor taking an
// *ec2.Client (NewClient builds one from the SDK's default chain), a
// DryRun that checks the IAM permissions with DryRun calls, a
// Validate(ctx) start-up check of the resources themselves, and Ready,
// which runs both for fstaid.WithReadiness and returns fstaid.Problems
// naming each resource and refused action (WithReadinessCalls counts its
// EC2 calls).
//
// # Retries and timeouts
//
// Every call goes through the SDK's standard retryer (NewRetryer) with
// its client-side rate limiter off (ratelimit.None), so a failover is
// never refused by our own retry-token bucket; the handler's context
// deadline bounds it, backoff included. The handlers never retry a call
// themselves; they only poll Describe calls while waiting for a state
// (available, attached, stopped, confirmed), each wait with its own
// bound.
//
// # Reports
//
// Each run of Handle produces a Report: the fence, each resource moved
// from where to where (or found in place, or left half done), and every
// EC2 call with its duration and attempts. The handler logs it when Handle
// returns (one structured slog record), keeps the last one (LastReport),
// passes it to WithReportFunc's callback, and returns it inside an *Error
// on failure; it marshals to JSON for the failover record.
//
// # Errors
//
// Errors name the operation and the resource: an *APIError whose Code is
// the EC2 error code, matching ErrUnauthorized (UnauthorizedOperation:
// the IAM policy lacks the action) or ErrNotFound (not found in the
// client's region — a wrong region looks the same). Handle wraps them in
// an *Error carrying the Report.
package aws
