package aws

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

const sampleTOML = `
[aws]
region = "us-east-1"
max_attempts = 8
max_backoff = 1.5

[[aws.elastic_ip]]
name = "public"
allocation_id = "eipalloc-1"
instance_id = "i-standby"
fence_instance_id = "i-active"
fence_timeout = 90
confirm_timeout = "20s"

[[aws.eni]]
network_interface_id = "eni-float"
instance_id = "i-standby"
device_index = 1
force_detach = true
detach_timeout = 30
poll_interval = 0.5

[[aws.secondary_ip]]
private_ip_addresses = ["10.0.1.100"]
network_interface_id = "eni-standby0"

[[aws.route_table]]
route_table_ids = ["rtb-1", "rtb-2"]
destination_cidr_blocks = ["10.0.255.10/32"]
network_interface_id = "eni-standby0"

[aws.imds]
instance_id = "i-monitor"
`

// decodeSection reads the [aws] table of doc through fstaidd's pipeline;
// err holds every problem.
func decodeSection(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	root, err := config.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DecodeSection(root.Table("aws", true))
	return cfg, root.Problems().Err()
}

func TestDecodeSection(t *testing.T) {
	cfg, err := decodeSection(t, sampleTOML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-1" || cfg.MaxAttempts != 8 || time.Duration(cfg.MaxBackoff) != 1500*time.Millisecond {
		t.Errorf("client config %+v", cfg.ClientConfig)
	}
	e := cfg.ElasticIP[0]
	if e.Name != "public" || e.AllocationID != "eipalloc-1" || e.FenceInstanceID != "i-active" || time.Duration(e.FenceTimeout) != 90*time.Second || time.Duration(e.ConfirmTimeout) != 20*time.Second {
		t.Errorf("elastic_ip %+v", e)
	}
	n := cfg.ENI[0]
	if !n.ForceDetach || n.DeviceIndex != 1 || time.Duration(n.DetachTimeout) != 30*time.Second || time.Duration(n.PollInterval) != 500*time.Millisecond {
		t.Errorf("eni %+v", n)
	}
	if cfg.IMDS == nil || cfg.IMDS.InstanceID != "i-monitor" {
		t.Errorf("imds %+v", cfg.IMDS)
	}
	hs, err := cfg.Handlers(ec2.New(ec2.Options{Region: "us-east-1"}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hs {
		names = append(names, h.Name())
	}
	// The fence of elastic_ip is the set's one step, first.
	if got := strings.Join(names, " "); got != "aws.fence public eni-float 10.0.1.100 10.0.255.10/32" {
		t.Errorf("handlers %s", got)
	}
	if got := hs[0].Timeout(); got != 95*time.Second {
		t.Errorf("the fence step's timeout is %v, want fence_timeout 90s + 5s", got)
	}
}

func TestConfigEveryProblemNamesItsKey(t *testing.T) {
	_, err := decodeSection(t, `
[aws]
max_attempts = -1
endpoint = "ec2.example"
colour = "blue"

[[aws.elastic_ip]]
allocation_id = "eip-1"
instance_id = "i-1"
network_interface_id = "eni-1"

[[aws.elastic_ip]]
allocation_id = "eipalloc-2"
fence_timout = 5

[[aws.eni]]
instance_id = "standby"
device_index = -2
fence_timeout = 5

[[aws.secondary_ip]]
private_ip_addresses = ["10.0.1.300"]
network_interface_id = "eni-1"
poll_interval = -1

[[aws.route_table]]
route_table_ids = ["rtb-1", "table-2"]
destination_cidr_blocks = ["10.0.255.10", "10.0.255.11/24"]

[aws.imds]
endpoint = "imds"
`)
	if err == nil {
		t.Fatal("a bad config decoded")
	}
	for _, want := range []string{
		"[aws] colour: unknown key",
		"[aws] max_attempts: must not be negative",
		`[aws] endpoint: want an http:// or https:// URL, not "ec2.example"`,
		`[[aws.elastic_ip]] #1 allocation_id: "eip-1" is not a eipalloc-... ID`,
		"[[aws.elastic_ip]] #1 network_interface_id: set instance_id or network_interface_id, not both",
		`[[aws.elastic_ip]] #2 fence_timout: unknown key (did you mean "fence_timeout"?)`,
		"[[aws.elastic_ip]] #2 instance_id: set instance_id or network_interface_id (the standby)",
		"[[aws.eni]] #1 network_interface_id: required",
		`[[aws.eni]] #1 instance_id: "standby" is not a i-... ID`,
		"[[aws.eni]] #1 device_index: must not be negative",
		"[[aws.eni]] #1 fence_instance_id: required when fence_timeout",
		`[[aws.secondary_ip]] #1 private_ip_addresses #1: "10.0.1.300" is not an IPv4 address`,
		"[[aws.secondary_ip]] #1 poll_interval: must be between 0 and 86400 seconds, got -1",
		`[[aws.route_table]] #1 route_table_ids #2: "table-2" is not a rtb-... ID`,
		`[[aws.route_table]] #1 destination_cidr_blocks #1: "10.0.255.10" is not an IPv4 CIDR block`,
		`[[aws.route_table]] #1 destination_cidr_blocks #2: "10.0.255.11/24" is not an IPv4 CIDR block`,
		"[[aws.route_table]] #1 network_interface_id: required",
		`[aws.imds] endpoint: want an http:// URL, not "imds"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestConstructorsRefuseABadConfig(t *testing.T) {
	c := ec2.New(ec2.Options{Region: "us-east-1"})
	if _, err := NewElasticIP(ElasticIPConfig{}, c); err == nil || !strings.Contains(err.Error(), "allocation_id: required") {
		t.Errorf("NewElasticIP: %v", err)
	}
	if _, err := NewENI(ENIConfig{NetworkInterfaceID: "eni-1", InstanceID: "i-1"}, nil); err == nil {
		t.Error("NewENI with a nil client")
	}
}

func TestHandlerTimeoutAndReport(t *testing.T) {
	cfg, err := decodeSection(t, `
[aws]
region = "eu-west-1"
[[aws.elastic_ip]]
allocation_id = "eipalloc-1"
instance_id = "i-1"
timeout = "1m30s"
[[aws.eni]]
network_interface_id = "eni-1"
instance_id = "i-2"
`)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := cfg.Handlers(ec2.New(ec2.Options{Region: "eu-west-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if hs[0].Timeout() != 90*time.Second || hs[1].Timeout() != DefaultTimeout {
		t.Errorf("timeouts %v %v", hs[0].Timeout(), hs[1].Timeout())
	}
	if r, ok := hs[0].(fstaid.Reporter); !ok || r.Report() != nil {
		t.Errorf("a handler that has not run must report nil, got %v", r.Report())
	}
	if _, err := decodeSection(t, "[aws]\nregion = \"x\"\n[[aws.eni]]\nnetwork_interface_id = \"eni-1\"\ninstance_id = \"i-2\"\ntimeout = -1\n"); err == nil || !strings.Contains(err.Error(), "[[aws.eni]] #1 timeout: must be between 0 and 86400 seconds, got -1") {
		t.Errorf("negative timeout: %v", err)
	}
}

// TestTimeoutMustCoverTheWaits: a handler timeout that is not longer than
// its fence and confirm waits is refused, naming both keys and values
// (timeout = 30 with the default fence_timeout of 120 would cut the fence
// in the middle and abort the move).
func TestTimeoutMustCoverTheWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    string
		kind string
		want string // "" = accepted
	}{
		{"fenced eip, timeout 30", `allocation_id = "eipalloc-1"
instance_id = "i-1"
fence_instance_id = "i-2"
timeout = 30`,
			"elastic_ip", "[[aws.elastic_ip]] #1 timeout: 30s must be longer than fence_timeout 2m0s (default) + confirm_timeout 30s (default) = 2m30s"},
		{"eip, timeout equal to confirm", `allocation_id = "eipalloc-1"
instance_id = "i-1"
timeout = 30`,
			"elastic_ip", "[[aws.elastic_ip]] #1 timeout: 30s must be longer than confirm_timeout 30s (default)"},
		{"eip, timeout 31", `allocation_id = "eipalloc-1"
instance_id = "i-1"
timeout = 31`, "elastic_ip", ""},
		{"default timeout, long fence", `allocation_id = "eipalloc-1"
instance_id = "i-1"
fence_instance_id = "i-2"
fence_timeout = 290`,
			"elastic_ip", "[[aws.elastic_ip]] #1 timeout: 5m0s (default) must be longer than fence_timeout 4m50s + confirm_timeout 30s (default) = 5m20s"},
		{"eni", `network_interface_id = "eni-1"
instance_id = "i-1"
timeout = 100
detach_timeout = 50`,
			"eni", "[[aws.eni]] #1 timeout: 1m40s must be longer than detach_timeout 50s + attach_timeout 1m0s (default) = 1m50s"},
		{"secondary_ip", `private_ip_addresses = ["10.0.1.100"]
network_interface_id = "eni-1"
fence_instance_id = "i-2"
fence_timeout = 10
confirm_timeout = 10
timeout = 20`,
			"secondary_ip", "[[aws.secondary_ip]] #1 timeout: 20s must be longer than fence_timeout 10s + confirm_timeout 10s = 20s"},
		{"route_table", `route_table_ids = ["rtb-1"]
destination_cidr_blocks = ["10.0.255.10/32"]
network_interface_id = "eni-1"
timeout = 5`,
			"route_table", "[[aws.route_table]] #1 timeout: 5s must be longer than confirm_timeout 30s (default)"},
	} {
		_, err := decodeSection(t, "[aws]\nregion = \"us-east-1\"\n[[aws."+tc.kind+"]]\n"+tc.h+"\n")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
}
