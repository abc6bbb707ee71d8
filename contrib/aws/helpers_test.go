package aws

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func TestMain(m *testing.M) {
	// Nothing in these tests may reach a real AWS endpoint or the real
	// IMDS: the SDK's default chain is pointed at nothing.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	os.Unsetenv("AWS_PROFILE")
	os.Unsetenv("AWS_ENDPOINT_URL")
	os.Unsetenv("AWS_ENDPOINT_URL_EC2")
	os.Exit(m.Run())
}

// testRetryer is the production retryer with test-sized backoff.
func testRetryer() aws.Retryer { return NewRetryer(5, 5*time.Millisecond) }

// newClient returns the real SDK client talking to the fake.
func newClient(t testing.TB, fake *ec2fake.Server, region string, retryer aws.Retryer) *ec2.Client {
	t.Helper()
	return ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: aws.String(fake.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:      retryer,
	})
}

// world is the fixture: an active and a standby in us-east-1a, a third
// instance in us-east-1b, an Elastic IP, a floating ENI, a secondary IP
// and two route tables, all on the active.
func world(t testing.TB) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	fake := ec2fake.New()
	t.Cleanup(fake.Close)
	populate(fake)
	return fake, newClient(t, fake, "us-east-1", testRetryer())
}

// populate (re)sets the fixture's resources to their initial state.
func populate(fake *ec2fake.Server) {
	fake.AddSubnet(ec2fake.Subnet{ID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", CIDR: "10.0.1.0/24"})
	fake.AddSubnet(ec2fake.Subnet{ID: "subnet-b", VPCID: "vpc-1", AZ: "us-east-1b", CIDR: "10.0.2.0/24"})
	for _, in := range []ec2fake.Instance{
		{ID: "i-active", AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1", SourceDestCheck: false},
		{ID: "i-standby", AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1", SourceDestCheck: false},
		{ID: "i-far", AZ: "us-east-1b", SubnetID: "subnet-b", VPCID: "vpc-1", SourceDestCheck: true},
	} {
		fake.AddInstance(in)
	}
	for _, i := range []ec2fake.Interface{
		{ID: "eni-active0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.10", "10.0.1.100", "10.0.1.101"},
			Attachment: &ec2fake.Attachment{ID: "eni-attach-a0", InstanceID: "i-active", DeviceIndex: 0}},
		{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20"},
			Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}},
		{ID: "eni-float", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.50"},
			Attachment: &ec2fake.Attachment{ID: "eni-attach-f1", InstanceID: "i-active", DeviceIndex: 1}},
		{ID: "eni-far0", SubnetID: "subnet-b", VPCID: "vpc-1", AZ: "us-east-1b", PrivateIPs: []string{"10.0.2.30"}, SourceDestCheck: true,
			Attachment: &ec2fake.Attachment{ID: "eni-attach-x0", InstanceID: "i-far", DeviceIndex: 0}},
	} {
		fake.AddInterface(i)
	}
	fake.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: "eipassoc-orig",
		InstanceID: "i-active", NetworkInterfaceID: "eni-active0", PrivateIP: "10.0.1.10"})
	for _, id := range []string{"rtb-1", "rtb-2"} {
		fake.AddRouteTable(ec2fake.RouteTable{ID: id, VPCID: "vpc-1", Routes: []ec2fake.Route{
			{Destination: "10.0.0.0/16", GatewayID: "local"},
			{Destination: "10.0.255.10/32", NetworkInterfaceID: "eni-active0", InstanceID: "i-active"},
		}})
	}
}

// quiet is the handler option for tests: a logger into t.Log.
func quiet(t testing.TB) Option {
	return WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// fastWait is a WaitConfig for tests.
var fastWait = WaitConfig{ConfirmTimeout: Duration(time.Second), PollInterval: Duration(5 * time.Millisecond)}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func operations(r *Report) []string {
	var out []string
	for _, c := range r.Calls {
		out = append(out, c.Operation)
	}
	return out
}
