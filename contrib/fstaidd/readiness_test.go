package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/ec2fake"
)

func TestReadinessIntervalConfig(t *testing.T) {
	for _, tc := range []struct {
		global string
		want   time.Duration
		err    string
	}{
		{"", 5 * time.Minute, ""},
		{"readiness_interval = 0", 0, ""},
		{"readiness_interval = 90", 90 * time.Second, ""},
		{`readiness_interval = "2m"`, 2 * time.Minute, ""},
		{"readiness_interval = -1", 0, "[global] readiness_interval: must be between 0 and 86400 seconds"},
	} {
		cfg, err := ParseConfig(strings.Replace(validBase, "[global]\n", "[global]\n"+tc.global+"\n", 1))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.global, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.global, err)
		case cfg.Global.ReadinessInterval != tc.want:
			t.Errorf("%q: readiness interval %v, want %v", tc.global, cfg.Global.ReadinessInterval, tc.want)
		}
	}
}

// setGlobal sets key = value in the env's [global], replacing the key's
// line when there is one.
func (e *env) setGlobal(key, value string) {
	data, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = .*$`)
	s := string(data)
	if line.MatchString(s) {
		s = line.ReplaceAllLiteralString(s, key+" = "+value)
	} else {
		s = strings.Replace(s, "[global]\n", "[global]\n"+key+" = "+value+"\n", 1)
	}
	os.WriteFile(e.config, []byte(s), 0o644)
}

// status reads /status.
func (r *running) status(t *testing.T) statusResponse {
	t.Helper()
	var st statusResponse
	resp, body, err := request(context.Background(), "GET", r.url+"/status", "ops", "pw")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /status: %v %v", resp, err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitReadiness polls /status until readiness is want, a run that
// started after since.
func (r *running) waitReadiness(t *testing.T, want string, since time.Time) statusResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := r.status(t)
		if st.Readiness == want && st.ReadinessChecked.After(since) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness %s never reached after %v (last %s, checked %v, problems %v)", want, since, st.Readiness, st.ReadinessChecked, st.ReadinessProblems)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns a sample's value from /metrics, -1 when absent.
func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, body, err := request(context.Background(), "GET", r.url+"/metrics", "ops", "pw")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// The rounds' interval and the readiness interval of these tests: gaps
// of about 0.2 s hold a handler's few EC2 calls to the local endpoint,
// also under the race detector.
const (
	roundInterval     = 200 * time.Millisecond
	readinessInterval = 600 * time.Millisecond
)

// readinessEnv is newEnv with those intervals.
func readinessEnv(t *testing.T, extra string) *env {
	e := newEnv(t, 0, extra)
	e.setGlobal("interval", fmt.Sprint(roundInterval.Seconds()))
	e.setGlobal("readiness_interval", fmt.Sprint(readinessInterval.Seconds()))
	return e
}

// TestReadinessAgainstEC2 rots the failover path of a running fstaidd
// through the project's EC2 endpoint — the permission revoked, the
// standby stopped, the Elastic IP released, the route deleted, the
// handler script removed — and checks that the next readiness run (one
// readiness interval at most) turns it not ready in /status, STATUS= and
// /metrics, naming the action and the resource, and that restoring each
// turns it ready again.
func TestReadinessAgainstEC2(t *testing.T) {
	ns := listenNotify(t)
	fake, md := awsWorld(t)
	fake.AddInterface(ec2fake.Interface{ID: "eni-standby0", SubnetID: "subnet-a", VPCID: "vpc-1", AZ: "us-east-1a", PrivateIPs: []string{"10.0.1.20"},
		Attachment: &ec2fake.Attachment{ID: "eni-attach-s0", InstanceID: "i-standby", DeviceIndex: 0}})
	route := ec2fake.Route{Destination: "10.0.255.10/32", NetworkInterfaceID: "eni-active0", InstanceID: "i-active"}
	fake.AddRouteTable(ec2fake.RouteTable{ID: "rtb-1", VPCID: "vpc-1", Routes: []ec2fake.Route{{Destination: "10.0.0.0/16", GatewayID: "local"}, route}})
	e := readinessEnv(t, awsSection(fake, md)+`
[[aws.route_table]]
name = "overlay"
route_table_ids = ["rtb-1"]
destination_cidr_blocks = ["10.0.255.10/32"]
network_interface_id = "eni-standby0"
timeout = 60
`+users)
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	st := r.waitReadiness(t, readinessReady, time.Time{})
	if v := r.metric(t, "fstaid_failover_ready"); v != 1 {
		t.Errorf("fstaid_failover_ready = %v, want 1", v)
	}

	for _, tc := range []struct {
		name           string
		break_, repair func()
		want           fstaid.Problem // Message: a substring
	}{
		{"permission revoked", func() { fake.Deny("AssociateAddress") }, func() { fake.Allow("AssociateAddress") },
			fstaid.Problem{Kind: fstaid.ProblemPermission, Resource: "eipalloc-1", Action: "AssociateAddress", Message: "UnauthorizedOperation"}},
		{"standby stopped", func() { fake.SetInstanceState("i-standby", "stopped") }, func() { fake.SetInstanceState("i-standby", "running") },
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "i-standby", Message: "stopped, not running"}},
		{"allocation released", func() { fake.ReleaseAddress("eipalloc-1") },
			func() {
				fake.AddAddress(ec2fake.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: "eipassoc-orig",
					InstanceID: "i-active", NetworkInterfaceID: "eni-active0", PrivateIP: "10.0.1.10"})
			},
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "eipalloc-1", Action: "DescribeAddresses", Message: "not found"}},
		{"route deleted", func() { fake.DeleteRoute("rtb-1", "10.0.255.10/32") }, func() { fake.AddRoute("rtb-1", route) },
			fstaid.Problem{Kind: fstaid.ProblemResource, Resource: "rtb-1:10.0.255.10/32", Message: "has no route"}},
		{"handler removed", func() { os.Rename(e.handler, e.handler+".moved") }, func() { os.Rename(e.handler+".moved", e.handler) },
			fstaid.Problem{Kind: fstaid.ProblemHandler, Resource: e.handler, Message: "no such file or directory"}},
	} {
		last := st.ReadinessChecked // the last run that found it ready
		tc.break_()
		st = r.waitReadiness(t, readinessNotReady, last)
		// The next run found it: runs are one readiness interval apart.
		if gap := st.ReadinessChecked.Sub(last); gap >= 2*readinessInterval {
			t.Errorf("%s: found by a run %v after the last ready one; want the next run (every %v)", tc.name, gap, readinessInterval)
		}
		if len(st.ReadinessProblems) != 1 {
			t.Fatalf("%s: problems %v, want one", tc.name, st.ReadinessProblems)
		}
		if p := st.ReadinessProblems[0]; p.Kind != tc.want.Kind || p.Resource != tc.want.Resource || p.Action != tc.want.Action || !strings.Contains(p.Message, tc.want.Message) {
			t.Errorf("%s: problem %s, want %s", tc.name, p, tc.want)
		}
		if v := r.metric(t, "fstaid_failover_ready"); v != 0 {
			t.Errorf("%s: fstaid_failover_ready = %v, want 0", tc.name, v)
		}
		if v := r.metric(t, `fstaid_readiness_problems{kind="`+string(tc.want.Kind)+`"}`); v != 1 {
			t.Errorf("%s: fstaid_readiness_problems{kind=%q} = %v, want 1", tc.name, tc.want.Kind, v)
		}
		line := "NOT READY to fail over: " + string(tc.want.Kind) + " " + tc.want.Resource
		if tc.want.Action != "" {
			line += " (" + tc.want.Action + ")"
		}
		ns.waitLast(t, "STATUS=", "STATUS=armed: watching db1; "+line)
		if _, out := runCmd(t, "status", "-config", e.config, "-addr", strings.TrimPrefix(r.url, "http://")); !strings.Contains(out, "readiness: NOT READY (checked ") ||
			!strings.Contains(out, "\n  "+strings.TrimPrefix(line, "NOT READY to fail over: ")+": ") {
			t.Errorf("%s: fstaidd status does not name the problem:\n%s", tc.name, out)
		}
		tc.repair()
		st = r.waitReadiness(t, readinessReady, st.ReadinessChecked)
		ns.waitLast(t, "STATUS=", "STATUS=armed: watching db1")
	}

	// Every readiness request is counted: the AssociateAddress requests
	// the endpoint saw were all readiness DryRuns (no failover ran). The
	// endpoint records a request before it answers, the counter after
	// the answer: read between two looks at the endpoint, it may lag by
	// the one request in flight (one handler sends AssociateAddress).
	dryRuns := func() int {
		n := 0
		for _, c := range fake.Calls() {
			if c.Action == "AssociateAddress" {
				if !c.DryRun {
					t.Errorf("AssociateAddress without DryRun: %+v", c)
				}
				n++
			}
		}
		return n
	}
	before := dryRuns()
	v := int(r.metric(t, `fstaid_readiness_aws_calls_total{action="AssociateAddress"}`))
	after := dryRuns()
	if before == 0 || v < before-1 || v > after {
		t.Errorf("fstaid_readiness_aws_calls_total{AssociateAddress} = %d, the endpoint saw %d, then %d", v, before, after)
	}
}

// A monitor that is not ready still fails over when the target dies (the
// problem may have healed, or not matter), and the record says what
// readiness last reported.
func TestNotReadyStillFailsOver(t *testing.T) {
	fake, md := awsWorld(t)
	e := readinessEnv(t, awsSection(fake, md))
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	fake.SetInstanceState("i-standby", "stopped")
	r.waitReadiness(t, readinessNotReady, time.Time{})
	e.touch("dead")
	if code := r.wait(t); code != exitFailedOver {
		t.Fatalf("exit %d, want 10: readiness must not block a failover", code)
	}
	rec, err := fstaid.NewFileLock(e.lockPath()).Load(context.Background())
	if err != nil || rec == nil || rec.Readiness == nil || rec.Readiness.Ready {
		t.Fatalf("record %+v, %v: want the readiness it had", rec, err)
	}
	if p := rec.Readiness.Problems; len(p) != 1 || p[0].Resource != "i-standby" {
		t.Errorf("record readiness problems %v, want the stopped standby", p)
	}
	if a := fake.Address("eipalloc-1"); a.InstanceID != "i-standby" {
		t.Errorf("the Elastic IP is on %q, want i-standby", a.InstanceID)
	}
	if _, out := runCmd(t, "status", "-config", e.config, "-addr", strings.TrimPrefix(r.url, "http://")); !strings.Contains(out, "  readiness before: not-ready: resource i-standby: standby instance i-standby is stopped") {
		t.Errorf("fstaidd status does not show the record's readiness:\n%s", out)
	}
}

func TestReadinessOff(t *testing.T) {
	e := newEnv(t, 0, users)
	e.setGlobal("readiness_interval", "0")
	r := e.start()
	r.waitState(t, fstaid.StateArmed)
	time.Sleep(200 * time.Millisecond)
	if st := r.status(t); st.Readiness != "" || st.Status.Readiness != nil {
		t.Errorf("readiness %q %+v with readiness_interval = 0", st.Readiness, st.Status.Readiness)
	}
	if v := r.metric(t, "fstaid_failover_ready"); v != -1 {
		t.Errorf("fstaid_failover_ready = %v with readiness off, want absent", v)
	}
}

// waitLast waits until the last message with prefix is want.
func (n *notifySocket) waitLast(t *testing.T, prefix, want string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		msgs, _ := n.snapshot()
		for _, m := range msgs {
			if strings.HasPrefix(m, prefix) {
				last = m
			}
		}
		if last == want {
			return
		}
	}
	t.Fatalf("last %s message %q, want %q", prefix, last, want)
}

// A handler script a deploy removed is a problem `fstaidd check` reports
// (as readiness does), not a configuration error that keeps `fstaidd
// status` from showing the daemon.
func TestToolsWithTheHandlerRemoved(t *testing.T) {
	e := newEnv(t, 0, users)
	os.Remove(e.handler)
	code, out := runCmd(t, "check", "-config", e.config)
	if code != 1 || !strings.Contains(out, "PROBLEM: handler "+e.handler+": not an executable file") {
		t.Errorf("fstaidd check = %d:\n%s", code, out)
	}
	code, out = runCmd(t, "status", "-config", e.config)
	if code == exitConfig || strings.Contains(out, "configuration error") {
		t.Errorf("fstaidd status = %d:\n%s", code, out)
	}
	if _, err := LoadConfig(e.config); err == nil || !strings.Contains(err.Error(), "[handler] command: "+e.handler+" is not an executable file") {
		t.Errorf("the daemon's LoadConfig = %v, want the handler refused", err)
	}
}
