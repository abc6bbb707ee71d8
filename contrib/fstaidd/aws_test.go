package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

// awsWorld is a local EC2 with an Elastic IP on the active instance, and
// a local IMDS; the SDK reaches both through the config's endpoints.
func awsWorld(t *testing.T) (*ec2fake.Server, *ec2fake.IMDS) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // credentials from the env only
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	fake := ec2fake.New()
	t.Cleanup(fake.Close)
	fake.AddSubnet(ec2fake.Subnet{ID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", CIDR: "10.0.1.0/24"})
	for _, id := range []string{"i-active", "i-standby"} {
		fake.AddInstance(ec2fake.Instance{ID: id, AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1"})
	}
	fake.AddInterface(ec2fake.Interface{ID: "eni-active0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.10"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-a0", InstanceID: "i-active", DeviceIndex: 0}})
	fake.AddInterface(ec2fake.Interface{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}})
	fake.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: "eipassoc-orig",
		InstanceID: "i-active", NetworkInterfaceID: "eni-active0", PrivateIP: "10.0.1.10"})
	md := ec2fake.NewIMDS("i-monitor")
	t.Cleanup(md.Close)
	return fake, md
}

func awsSection(fake *ec2fake.Server, md *ec2fake.IMDS) string {
	return `
[self]
imds = true
timeout = 2

[aws]
region = "us-east-1"
endpoint = "` + fake.URL + `"
max_attempts = 3

[aws.imds]
endpoint = "` + md.URL + `"
instance_id = "i-monitor"

[[aws.elastic_ip]]
name = "web-eip"
allocation_id = "eipalloc-1"
instance_id = "i-standby"
timeout = 60
`
}

func TestAWSElasticIPFailover(t *testing.T) {
	fake, md := awsWorld(t)
	e := newEnv(t, 0, awsSection(fake, md))
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	e.touch("dead")
	if code := r.wait(t); code != exitFailedOver {
		t.Fatalf("exit %d, want 10", code)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" {
		t.Errorf("the Elastic IP is on %q, want i-standby", a.InstanceID)
	}
	// The AWS handler ran before the command handler, which saw the new
	// state; the record tells what moved where.
	if got := e.calls(); len(got) != 1 {
		t.Errorf("command handler calls %q", got)
	}
	data, _ := os.ReadFile(e.lockPath())
	var rec fstaid.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Handlers) != 2 || rec.Handlers[0].Name != "web-eip" || rec.Handlers[1].Name != "handler" || rec.Handlers[0].Detail == nil {
		t.Fatalf("record handlers %+v", rec.Handlers)
	}
	detail, _ := json.Marshal(rec.Handlers[0].Detail)
	for _, want := range []string{"i-active", "i-standby", "AssociateAddress"} {
		if !strings.Contains(string(detail), want) {
			t.Errorf("the record's detail lacks %q: %s", want, detail)
		}
	}
	if puts, gets := md.Counts(); puts == 0 || gets == 0 {
		t.Errorf("the IMDS self check never ran (puts %d, gets %d)", puts, gets)
	}
}

func TestAWSPermissionDeniedFailsOverAsFailed(t *testing.T) {
	fake, md := awsWorld(t)
	fake.Deny("AssociateAddress")
	e := newEnv(t, 0, awsSection(fake, md))
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	e.touch("dead")
	if code := r.wait(t); code != exitHandlerFailed {
		t.Fatalf("exit %d, want 11", code)
	}
	rec, _ := fstaid.NewFileLock(e.lockPath()).Load(context.Background())
	if rec == nil || rec.State != fstaid.RecordHandlerFailed || !strings.Contains(rec.Handlers[0].Error, "UnauthorizedOperation") {
		t.Errorf("record %+v", rec)
	}
	// The notification script still ran after the failed move.
	if len(e.calls()) != 1 {
		t.Errorf("command handler calls %q", e.calls())
	}
}

func TestAWSCheckDryRun(t *testing.T) {
	fake, md := awsWorld(t)
	e := newEnv(t, 0, awsSection(fake, md))
	_, out := runCmd(t, "check", "-config", e.config)
	for _, want := range []string{"aws handler web-eip: permissions OK (DryRun)", "aws handler web-eip: resources OK", "self check IMDSv2 instance-id: PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	fake.Deny("AssociateAddress")
	if _, out := runCmd(t, "check", "-config", e.config); !strings.Contains(out, "PROBLEM: aws handler web-eip: permissions (DryRun)") {
		t.Errorf("a denied permission was not reported:\n%s", out)
	}
}

func TestAWSConfigErrorsListedWithTheRest(t *testing.T) {
	_, err := ParseConfig(validBase + `
[aws]
region = "us-east-1"
regoin = "x"
[[aws.elastic_ip]]
instance_id = "i-1"
`)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"[aws] ", "regoin", "allocation_id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lacks %q:\n%v", want, err)
		}
	}
}

// TestAWSTimeoutShorterThanItsWaitsIsAConfigError: timeout = 30 with the
// default fence_timeout (120) would cut the fence in the middle: fstaidd
// refuses the file (exit 78), naming both keys and their values.
func TestAWSTimeoutShorterThanItsWaitsIsAConfigError(t *testing.T) {
	fake, md := awsWorld(t)
	e := newEnv(t, 0, strings.Replace(awsSection(fake, md), "timeout = 60", "fence_instance_id = \"i-active\"\ntimeout = 30", 1))
	want := "[[aws.elastic_ip]] #1 timeout: 30s must be longer than fence_timeout 2m0s (default) + confirm_timeout 30s (default) = 2m30s"
	if code, out := runCmd(t, "check", "-config", e.config); code != exitConfig || !strings.Contains(out, want) {
		t.Errorf("fstaidd check: exit %d, want 78 and %q:\n%s", code, want, out)
	}
	r := e.start()
	if code := r.wait(t); code != exitConfig {
		t.Errorf("fstaidd: exit %d, want 78", code)
	}
}

// awsLog collects a daemon's log.
type awsLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *awsLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}
func (l *awsLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// eniWorld adds a floating ENI on the active and a standby in another
// availability zone.
func eniWorld(fake *ec2fake.Server) {
	fake.AddSubnet(ec2fake.Subnet{ID: "subnet-b", VPCID: "vpc-1", AZ: "us-east-1b", CIDR: "10.0.2.0/24"})
	fake.AddInstance(ec2fake.Instance{ID: "i-far", AZ: "us-east-1b", SubnetID: "subnet-b", VPCID: "vpc-1"})
	fake.AddInterface(ec2fake.Interface{ID: "eni-float", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.50"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-f1", InstanceID: "i-active", DeviceIndex: 1}})
}

// TestAWSStartupValidation: fstaidd validates the AWS resources when it
// starts, not only in `fstaidd check`: a standby in another availability
// zone than its ENI can never work (exit 78, before serving, nothing
// touched); a stopped standby may change (a warning, and it runs).
func TestAWSStartupValidation(t *testing.T) {
	fake, md := awsWorld(t)
	eniWorld(fake)
	eni := func(standby string) string {
		return awsSection(fake, md) + `
[[aws.eni]]
name = "floating"
network_interface_id = "eni-float"
instance_id = "` + standby + `"
`
	}
	run := func(config string) (*awsLog, chan int, context.CancelFunc) {
		e := newEnv(t, 0, config)
		var log awsLog
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		d := &daemon{configPath: e.config, stderr: &log, serving: func([]net.Addr) { log.Write([]byte("SERVING\n")) }}
		go func() { done <- d.run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("daemon did not stop")
			}
		})
		return &log, done, cancel
	}

	log, done, _ := run(eni("i-far"))
	select {
	case code := <-done:
		done <- code
		if code != exitConfig {
			t.Errorf("standby in another zone: exit %d, want 78", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("fstaidd started with a standby in another availability zone")
	}
	want := "aws handler floating: network interface eni-float (subnet subnet-a) is in availability zone us-east-1a but standby instance i-far is in us-east-1b"
	if s := log.String(); !strings.Contains(s, want) || strings.Contains(s, "SERVING") {
		t.Errorf("log lacks %q, or it served:\n%s", want, s)
	}
	for _, op := range fake.Actions() {
		if op != "DescribeAddresses" && op != "DescribeInstances" && op != "DescribeNetworkInterfaces" {
			t.Errorf("start-up validation called %s", op)
		}
	}

	// A stopped standby may be started before a failover: a warning.
	fake.AddInstance(ec2fake.Instance{ID: "i-standby", AZ: "us-east-1a", SubnetID: "subnet-a", VPCID: "vpc-1", State: "stopped"})
	log, done, cancel := run(eni("i-standby"))
	waitFor(t, 20*time.Second, func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("a stopped standby stopped fstaidd: exit %d\n%s", code, log.String())
		default:
		}
		if !strings.Contains(log.String(), "SERVING") {
			return fmt.Errorf("not serving:\n%s", log.String())
		}
		return nil
	})
	cancel()
	if s := log.String(); !strings.Contains(s, "standby instance i-standby is stopped, not running") || !strings.Contains(s, "must be gone before a failover") {
		t.Errorf("no warning about the stopped standby:\n%s", s)
	}
}
