package ec2fake

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, form url.Values, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if auth {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWireShapes(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddAddress(Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1"})

	st, body := post(t, s, url.Values{"Action": {"DescribeAddresses"}, "Version": {APIVersion}, "AllocationId.1": {"eipalloc-1"}}, true)
	want := `<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`
	if st != 200 || !strings.Contains(body, want) || !strings.Contains(body, "<addressesSet><item><allocationId>eipalloc-1</allocationId>") {
		t.Errorf("%d %s", st, body)
	}

	st, body = post(t, s, url.Values{"Action": {"DescribeAddresses"}, "Version": {APIVersion}, "AllocationId.1": {"eipalloc-2"}}, true)
	if st != 400 || !strings.Contains(body, "<Response><Errors><Error><Code>InvalidAllocationID.NotFound</Code><Message>") || !strings.Contains(body, "</Errors><RequestID>") {
		t.Errorf("%d %s", st, body)
	}

	st, body = post(t, s, url.Values{"Action": {"DescribeAddresses"}, "Version": {"2014-01-01"}}, true)
	if st != 400 || !strings.Contains(body, "InvalidParameterValue") {
		t.Errorf("old version: %d %s", st, body)
	}
	st, body = post(t, s, url.Values{"Action": {"DescribeAddresses"}, "Version": {APIVersion}}, false)
	if st != 401 || !strings.Contains(body, "AuthFailure") {
		t.Errorf("unsigned: %d %s", st, body)
	}
	st, body = post(t, s, url.Values{"Action": {"AssociateAddress"}, "Version": {APIVersion}, "DryRun": {"true"}}, true)
	if st != 412 || !strings.Contains(body, "DryRunOperation") {
		t.Errorf("dry run: %d %s", st, body)
	}
	s.Deny("AssociateAddress")
	st, body = post(t, s, url.Values{"Action": {"AssociateAddress"}, "Version": {APIVersion}, "DryRun": {"true"}}, true)
	if st != 403 || !strings.Contains(body, "UnauthorizedOperation") {
		t.Errorf("denied dry run: %d %s", st, body)
	}
	st, body = post(t, s, url.Values{"Action": {"RunInstances"}, "Version": {APIVersion}}, true)
	if st != 400 || !strings.Contains(body, "InvalidAction") {
		t.Errorf("unknown action: %d %s", st, body)
	}
}

// The changes made outside the monitor (a console, another tool) show in
// the answers at once.
func TestOutOfBandChanges(t *testing.T) {
	s := New()
	defer s.Close()
	s.AddAddress(Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1"})
	s.AddInstance(Instance{ID: "i-1", AZ: "us-east-1a"})
	s.AddRouteTable(RouteTable{ID: "rtb-1", Routes: []Route{{Destination: "10.9.0.1/32", NetworkInterfaceID: "eni-1"}}})
	call := func(form url.Values) string {
		form.Set("Version", APIVersion)
		_, body := post(t, s, form, true)
		return body
	}
	s.SetInstanceState("i-1", "stopped")
	if body := call(url.Values{"Action": {"DescribeInstances"}, "InstanceId.1": {"i-1"}}); !strings.Contains(body, "<name>stopped</name>") {
		t.Errorf("after SetInstanceState stopped: %s", body)
	}
	s.ReleaseAddress("eipalloc-1")
	if body := call(url.Values{"Action": {"DescribeAddresses"}, "AllocationId.1": {"eipalloc-1"}}); !strings.Contains(body, "InvalidAllocationID.NotFound") {
		t.Errorf("after ReleaseAddress: %s", body)
	}
	s.DeleteRoute("rtb-1", "10.9.0.1/32")
	if body := call(url.Values{"Action": {"DescribeRouteTables"}, "RouteTableId.1": {"rtb-1"}}); strings.Contains(body, "10.9.0.1/32") {
		t.Errorf("after DeleteRoute: %s", body)
	}
	s.AddRoute("rtb-1", Route{Destination: "10.9.0.1/32", NetworkInterfaceID: "eni-1"})
	if body := call(url.Values{"Action": {"DescribeRouteTables"}, "RouteTableId.1": {"rtb-1"}}); !strings.Contains(body, "10.9.0.1/32") {
		t.Errorf("after AddRoute: %s", body)
	}
}
