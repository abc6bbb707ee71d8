package aws

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/fstaid/fstaid"
)

// IMDSConfig configures the IMDSv2 self check.
type IMDSConfig struct {
	// Endpoint is the metadata service; default http://169.254.169.254
	// (or AWS_EC2_METADATA_SERVICE_ENDPOINT).
	Endpoint string `toml:"endpoint"`
	// InstanceID, when set, must be the answer: the check then also
	// proves it runs on the expected host.
	InstanceID string `toml:"instance_id"`
}

// Validate returns every problem of the configuration.
func (c *IMDSConfig) Validate() error {
	var p problems
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		p.Add("endpoint", "want an http:// URL, not %q", c.Endpoint)
	}
	if c.InstanceID != "" {
		p.resourceID("instance_id", c.InstanceID, "i-")
	}
	return p.Err()
}

// IMDSCheck is a native IMDSv2 check, what the original's example does
// with curl to 169.254.169.254: PUT /latest/api/token for a session
// token, then GET /latest/meta-data/instance-id with it (no IMDSv1
// fallback). The token is kept and reused until it expires or is refused
// (401), when the check drops it and retries once with a new one.
//
// Beware what it proves: IMDS is served by the instance's own hypervisor
// (the Nitro card) at a link-local address, so it answers even when the
// VPC path is cut — a broken route table, security group or NACL, or a
// failed ENI, leave it green. It shows the instance is up and the
// monitor's own host is alive, not that the monitor can reach the target
// or the EC2 API; a self check through the bastion, or a TCP/HTTP check
// of a VPC address, proves more.
//
// A failure is a *fstaid.CheckError with exit status 1. The check
// honours its context; it is safe for concurrent use. It never uses a
// proxy from the environment (HTTP_PROXY): IMDS is link-local, and a
// proxy would answer for the monitor's identity.
type IMDSCheck struct {
	cfg    IMDSConfig
	client *imds.Client
}

var _ fstaid.Check = (*IMDSCheck)(nil)

// NewIMDSCheck returns the check for cfg. optFns adjust the IMDS client.
func NewIMDSCheck(cfg IMDSConfig, optFns ...func(*imds.Options)) (*IMDSCheck, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := imds.Options{
		Endpoint:          cfg.Endpoint,
		ClientEnableState: imds.ClientEnabled, // AWS_EC2_METADATA_DISABLED must not silence a configured check
		EnableFallback:    aws.FalseTernary,   // IMDSv2 only: no token, no pass
		// One retry: an expired or refused token (401) is dropped and the
		// retry fetches a new one. The check's timeout bounds it; the
		// monitor's next round is the real retry.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 2
			o.MaxBackoff = 50 * time.Millisecond
			o.Backoff = retry.NewExponentialJitterBackoff(o.MaxBackoff)
			o.RateLimiter = ratelimit.None
		}),
		DisableDefaultMaxBackoff: true, // keep our 50ms, not the client's 1s
		// No proxy from the environment: the SDK's default transport
		// reads HTTP_PROXY, and a proxy would then answer for the
		// monitor's own identity (and a dead proxy would fail a healthy
		// monitor). The IMDS client still adds its short dial and
		// response-header timeouts to this BuildableClient.
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.Proxy = nil }),
	}
	for _, f := range optFns {
		f(&opts)
	}
	return &IMDSCheck{cfg: cfg, client: imds.New(opts)}, nil
}

// Check fetches the instance ID with a session token.
func (c *IMDSCheck) Check(ctx context.Context) error {
	out, err := c.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		if ctx.Err() != nil {
			// The SDK's IMDS errors do not all unwrap to the context's.
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return &fstaid.CheckError{ExitStatus: 1, Err: fmt.Errorf("IMDSv2 instance-id: %w", err)}
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return &fstaid.CheckError{ExitStatus: 1, Err: fmt.Errorf("IMDSv2 instance-id: %w", err)}
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return &fstaid.CheckError{ExitStatus: 1, Err: fmt.Errorf("IMDSv2 instance-id: empty answer")}
	}
	if c.cfg.InstanceID != "" && id != c.cfg.InstanceID {
		return &fstaid.CheckError{ExitStatus: 1, Err: fmt.Errorf("IMDSv2 instance-id is %s, want %s", id, c.cfg.InstanceID)}
	}
	return nil
}

// String names the check.
func (c *IMDSCheck) String() string {
	if c.cfg.Endpoint != "" {
		return "imds " + c.cfg.Endpoint
	}
	return "imds"
}
