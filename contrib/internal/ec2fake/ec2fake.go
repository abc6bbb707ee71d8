// Package ec2fake is a local EC2 endpoint for tests: an httptest server
// that speaks the EC2 Query protocol (form-encoded Action and Version,
// XML responses in the documented shapes under
// xmlns="http://ec2.amazonaws.com/doc/2016-11-15/", errors as HTTP 4xx/5xx
// with Response/Errors/Error/Code) and holds the state of Elastic IPs,
// network interfaces and their attachments, route tables, subnets and
// instances, so that the real aws-sdk-go-v2 EC2 client can drive it
// through BaseEndpoint.
//
// Faults can be injected per action: throttling (RequestLimitExceeded),
// 500s, any error code, latency, permission errors (UnauthorizedOperation,
// also answered to DryRun requests) and slow or stuck state transitions
// (detaching, attaching, stopping).
//
// Resources live in one region (Region, default us-east-1, read from the
// SigV4 credential scope): a client signing for another region sees an
// empty world and gets the NotFound errors AWS gives for a wrong region.
package ec2fake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is the EC2 API namespace of every response.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// APIVersion is the only Version the server accepts.
const APIVersion = "2016-11-15"

// Never, as a transition delay, means the transition never completes.
const Never time.Duration = -1

// Address is an Elastic IP.
type Address struct {
	AllocationID       string
	PublicIP           string
	AssociationID      string
	InstanceID         string
	NetworkInterfaceID string
	PrivateIP          string
}

// Instance is an EC2 instance.
type Instance struct {
	ID              string
	AZ              string
	SubnetID        string
	VPCID           string
	State           string // pending, running, stopping, stopped, shutting-down, terminated
	SourceDestCheck bool

	stoppedAt    time.Time // when stopping ends; zero with Never
	terminatedAt time.Time // when shutting-down ends; zero with Never
}

// Attachment attaches an interface to an instance.
type Attachment struct {
	ID          string
	InstanceID  string
	DeviceIndex int32
	Status      string // attaching, attached, detaching

	until time.Time // end of the current transition; zero: never
}

// Interface is an elastic network interface.
type Interface struct {
	ID       string
	SubnetID string
	VPCID    string
	AZ       string
	// PrivateIPs lists the private addresses, the primary first.
	PrivateIPs      []string
	SourceDestCheck bool
	Attachment      *Attachment // nil: available
}

// Status is "in-use" while attached (or attaching, or detaching), else
// "available".
func (i *Interface) Status() string {
	if i.Attachment != nil {
		return "in-use"
	}
	return "available"
}

// Route is one route of a route table.
type Route struct {
	Destination        string
	NetworkInterfaceID string
	InstanceID         string
	GatewayID          string
}

// RouteTable is a VPC route table.
type RouteTable struct {
	ID     string
	VPCID  string
	Routes []Route
}

// Subnet is a VPC subnet.
type Subnet struct {
	ID    string
	VPCID string
	AZ    string
	CIDR  string
}

// Fault is an injected failure of one request.
type Fault struct {
	// Status is the HTTP status (default 400; 503 suits
	// RequestLimitExceeded, 500 InternalError).
	Status int
	// Code and Message go in Response/Errors/Error.
	Code    string
	Message string
	// Delay holds the response back (honouring the client's
	// cancellation) before the fault or the normal answer.
	Delay time.Duration
	// Pass answers normally after Delay: a slow but successful call.
	Pass bool
	// Before runs after Delay, before the request is answered (without
	// the server's lock: it may call the Server's methods): a change of
	// state that races the call, such as Terminate just before a
	// StopInstances.
	Before func()
}

// Throttle is the fault AWS answers when the account's request rate is
// exceeded.
var Throttle = Fault{Status: 503, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}

// InternalError is an EC2 500.
var InternalError = Fault{Status: 500, Code: "InternalError", Message: "An internal error has occurred."}

// Call is one request the server received.
type Call struct {
	Action string
	Params url.Values
	Region string
	DryRun bool
	// Code is the error code answered, empty for success.
	Code string
	// Served is the server's time on the request, injected latency
	// included (what a real endpoint's latency would be).
	Served time.Duration
}

// Server is the fake EC2 endpoint. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the endpoint, for ec2.Options.BaseEndpoint.
	URL string
	srv *httptest.Server

	mu          sync.Mutex
	region      string
	latency     time.Duration
	detachDelay time.Duration
	attachDelay time.Duration
	stopDelay   time.Duration
	addresses   map[string]*Address
	instances   map[string]*Instance
	interfaces  map[string]*Interface
	routeTables map[string]*RouteTable
	subnets     map[string]*Subnet
	faults      map[string][]Fault
	denied      map[string]bool
	calls       []Call
	seq         int
	now         func() time.Time
}

// New starts a server on 127.0.0.1; Close stops it.
func New() *Server {
	s := &Server{
		region:      "us-east-1",
		addresses:   map[string]*Address{},
		instances:   map[string]*Instance{},
		interfaces:  map[string]*Interface{},
		routeTables: map[string]*RouteTable{},
		subnets:     map[string]*Subnet{},
		faults:      map[string][]Fault{},
		denied:      map[string]bool{},
		now:         time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// SetRegion sets the region the resources live in.
func (s *Server) SetRegion(r string) { s.mu.Lock(); s.region = r; s.mu.Unlock() }

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// SetDetachDelay sets how long an interface stays detaching (Never: for
// ever). Default 0: detached at once.
func (s *Server) SetDetachDelay(d time.Duration) { s.mu.Lock(); s.detachDelay = d; s.mu.Unlock() }

// SetAttachDelay sets how long an attachment stays attaching.
func (s *Server) SetAttachDelay(d time.Duration) { s.mu.Lock(); s.attachDelay = d; s.mu.Unlock() }

// SetStopDelay sets how long an instance stays stopping (Never: for ever).
func (s *Server) SetStopDelay(d time.Duration) { s.mu.Lock(); s.stopDelay = d; s.mu.Unlock() }

// Inject queues faults for the next requests of action, one per request,
// in order.
func (s *Server) Inject(action string, faults ...Fault) {
	s.mu.Lock()
	s.faults[action] = append(s.faults[action], faults...)
	s.mu.Unlock()
}

// Deny answers UnauthorizedOperation to every request of action, DryRun
// or not, until Allow.
func (s *Server) Deny(action string) { s.mu.Lock(); s.denied[action] = true; s.mu.Unlock() }

// Allow undoes Deny.
func (s *Server) Allow(action string) { s.mu.Lock(); delete(s.denied, action); s.mu.Unlock() }

// AddAddress adds an Elastic IP.
func (s *Server) AddAddress(a Address) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addresses[a.AllocationID] = &a
}

// AddInstance adds an instance; State defaults to running.
func (s *Server) AddInstance(i Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i.State == "" {
		i.State = "running"
	}
	s.instances[i.ID] = &i
}

// AddInterface adds a network interface.
func (s *Server) AddInterface(i Interface) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i.Attachment != nil {
		a := *i.Attachment
		if a.Status == "" {
			a.Status = "attached"
		}
		i.Attachment = &a
	}
	i.PrivateIPs = slices.Clone(i.PrivateIPs)
	s.interfaces[i.ID] = &i
}

// AddRouteTable adds a route table.
func (s *Server) AddRouteTable(rt RouteTable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt.Routes = slices.Clone(rt.Routes)
	s.routeTables[rt.ID] = &rt
}

// AddSubnet adds a subnet.
func (s *Server) AddSubnet(sn Subnet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subnets[sn.ID] = &sn
}

// Terminate starts terminating an instance, as a spot reclaim or an
// auto-scaling termination does: it is shutting-down for d (Never: for
// ever), then terminated; d = 0 terminates it at once. Once terminated,
// its Elastic IPs are disassociated and its secondary interfaces
// detached, as on EC2. StopInstances on it answers IncorrectInstanceState.
func (s *Server) Terminate(id string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instances[id]
	if in == nil {
		panic("ec2fake: Terminate: no instance " + id)
	}
	in.State, in.terminatedAt = "shutting-down", s.after(d)
	if d == 0 {
		s.terminated(in)
	}
}

// terminated makes in terminated, with what EC2 does then; s.mu is held.
func (s *Server) terminated(in *Instance) {
	in.State, in.terminatedAt = "terminated", time.Time{}
	for _, a := range s.addresses {
		if a.InstanceID == in.ID {
			a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "", "", "", ""
		}
	}
	for _, i := range s.interfaces {
		if a := i.Attachment; a != nil && a.InstanceID == in.ID && a.DeviceIndex > 0 {
			i.Attachment = nil
		}
	}
}

// SetInstanceState puts an instance in state at once, as someone who
// stops or starts it outside the monitor would (stopped, running).
func (s *Server) SetInstanceState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.instances[id]
	if in == nil {
		panic("ec2fake: SetInstanceState: no instance " + id)
	}
	in.State, in.stoppedAt, in.terminatedAt = state, time.Time{}, time.Time{}
}

// ReleaseAddress releases an Elastic IP, as ec2:ReleaseAddress does:
// from then on it is not found. AddAddress brings it back.
func (s *Server) ReleaseAddress(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addresses[id] == nil {
		panic("ec2fake: ReleaseAddress: no address " + id)
	}
	delete(s.addresses, id)
}

// DeleteRoute deletes the route to destination from a route table, as
// ec2:DeleteRoute does.
func (s *Server) DeleteRoute(routeTableID, destination string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.routeTables[routeTableID]
	if rt == nil {
		panic("ec2fake: DeleteRoute: no route table " + routeTableID)
	}
	n := len(rt.Routes)
	rt.Routes = slices.DeleteFunc(rt.Routes, func(r Route) bool { return r.Destination == destination })
	if len(rt.Routes) == n {
		panic("ec2fake: DeleteRoute: no route to " + destination + " in " + routeTableID)
	}
}

// AddRoute adds a route to a route table (ec2:CreateRoute).
func (s *Server) AddRoute(routeTableID string, r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.routeTables[routeTableID]
	if rt == nil {
		panic("ec2fake: AddRoute: no route table " + routeTableID)
	}
	rt.Routes = append(rt.Routes, r)
}

// CompleteTransitions ends every pending transition now (detaching,
// attaching, stopping, shutting-down), even those set to Never.
func (s *Server) CompleteTransitions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range s.interfaces {
		switch a := i.Attachment; {
		case a == nil:
		case a.Status == "detaching":
			i.Attachment = nil
		case a.Status == "attaching":
			a.Status, a.until = "attached", time.Time{}
		}
	}
	for _, in := range s.instances {
		switch in.State {
		case "stopping":
			in.State = "stopped"
		case "shutting-down":
			s.terminated(in)
		}
	}
}

// Address returns a copy of an Elastic IP's state.
func (s *Server) Address(id string) Address {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.addresses[id]; a != nil {
		return *a
	}
	return Address{}
}

// Interface returns a copy of an interface's state, transitions applied.
func (s *Server) Interface(id string) Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	i := s.interfaces[id]
	if i == nil {
		return Interface{}
	}
	c := *i
	c.PrivateIPs = slices.Clone(i.PrivateIPs)
	if i.Attachment != nil {
		a := *i.Attachment
		c.Attachment = &a
	}
	return c
}

// Instance returns a copy of an instance's state, transitions applied.
func (s *Server) Instance(id string) Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	if i := s.instances[id]; i != nil {
		return *i
	}
	return Instance{}
}

// RouteTable returns a copy of a route table.
func (s *Server) RouteTable(id string) RouteTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt := s.routeTables[id]; rt != nil {
		c := *rt
		c.Routes = slices.Clone(rt.Routes)
		return c
	}
	return RouteTable{}
}

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Actions returns the actions received so far, in order.
func (s *Server) Actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.Action
	}
	return out
}

// ResetCalls forgets the requests received so far.
func (s *Server) ResetCalls() { s.mu.Lock(); s.calls = nil; s.mu.Unlock() }

// apiError is an EC2 error answer.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

var credentialRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([^/]+)/ec2/aws4_request`)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		http.Error(w, "EC2 Query API: POST / expected", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, errorf(400, "MalformedQueryString", "%v", err), "")
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	region := ""
	if m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		region = m[1]
	}
	call := Call{Action: action, Params: form, Region: region, DryRun: form.Get("DryRun") == "true"}

	s.mu.Lock()
	delay := s.latency
	var fault *Fault
	if q := s.faults[action]; len(q) > 0 {
		f := q[0]
		s.faults[action] = q[1:]
		fault = &f
		delay += f.Delay
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.record(call, "ClientGone")
			return
		}
	}

	if fault != nil && fault.Before != nil {
		fault.Before()
	}

	s.mu.Lock()
	s.seq++
	requestID := fmt.Sprintf("fake-%08d-0000-0000-0000-000000000000", s.seq)
	var body any
	var aerr *apiError
	switch {
	case fault != nil && !fault.Pass:
		st := fault.Status
		if st == 0 {
			st = 400
		}
		aerr = &apiError{status: st, code: fault.Code, message: fault.Message}
	case r.Header.Get("Authorization") == "":
		aerr = errorf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
	case form.Get("Version") != APIVersion:
		aerr = errorf(400, "InvalidParameterValue", "Version %q is not supported; want %s", form.Get("Version"), APIVersion)
	case s.denied[action]:
		aerr = errorf(403, "UnauthorizedOperation", "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/fstaid is not authorized to perform: ec2:%s", action)
	case call.DryRun:
		aerr = errorf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	default:
		h, ok := s.actions()[action]
		if !ok {
			aerr = errorf(400, "InvalidAction", "The action %s is not valid for this web service.", action)
			break
		}
		s.advance()
		v := &view{s: s, form: form, foreign: region != "" && region != s.region}
		body, aerr = h(v)
	}
	code := ""
	if aerr != nil {
		code = aerr.code
	}
	s.calls = append(s.calls, Call{Action: call.Action, Params: call.Params, Region: call.Region, DryRun: call.DryRun, Code: code, Served: time.Since(start)})
	s.mu.Unlock()

	if aerr != nil {
		writeError(w, aerr, requestID)
		return
	}
	out, err := xml.Marshal(body)
	if err != nil {
		panic(err)
	}
	// Every response carries the namespace and requestId, as EC2 does.
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write([]byte(xml.Header))
	w.Write(injectHeader(out, requestID))
}

func (s *Server) record(c Call, code string) {
	s.mu.Lock()
	c.Code = code
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

// injectHeader adds the namespace and requestId to the root element.
func injectHeader(doc []byte, requestID string) []byte {
	i := strings.IndexAny(string(doc), " >")
	head := string(doc[:i])
	rest := string(doc[i:])
	j := strings.Index(rest, ">")
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(` xmlns="` + Namespace + `"`)
	b.WriteString(rest[:j+1])
	b.WriteString("<requestId>" + requestID + "</requestId>")
	b.WriteString(rest[j+1:])
	return []byte(b.String())
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []errXML `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type errXML struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, e *apiError, requestID string) {
	out, _ := xml.Marshal(errorResponse{Errors: []errXML{{e.code, e.message}}, RequestID: requestID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	w.Write([]byte(xml.Header))
	w.Write(out)
}

// advance completes the transitions that are due; s.mu is held.
func (s *Server) advance() {
	now := s.now()
	for _, i := range s.interfaces {
		a := i.Attachment
		if a == nil || a.until.IsZero() || now.Before(a.until) {
			continue
		}
		switch a.Status {
		case "detaching":
			i.Attachment = nil
		case "attaching":
			a.Status, a.until = "attached", time.Time{}
		}
	}
	for _, in := range s.instances {
		if in.State == "stopping" && !in.stoppedAt.IsZero() && !now.Before(in.stoppedAt) {
			in.State = "stopped"
		}
		if in.State == "shutting-down" && !in.terminatedAt.IsZero() && !now.Before(in.terminatedAt) {
			s.terminated(in)
		}
	}
}

func (s *Server) after(d time.Duration) time.Time {
	if d == Never {
		return time.Time{}
	}
	return s.now().Add(d)
}

// view is one request's access to the state; foreign requests (another
// region) see nothing.
type view struct {
	s       *Server
	form    url.Values
	foreign bool
}

func (v *view) list(prefix string) []string {
	var out []string
	for n := 1; ; n++ {
		val, ok := v.form[prefix+"."+strconv.Itoa(n)]
		if !ok {
			return out
		}
		out = append(out, val[0])
	}
}

func (v *view) filters() map[string][]string {
	f := map[string][]string{}
	for n := 1; ; n++ {
		name := v.form.Get("Filter." + strconv.Itoa(n) + ".Name")
		if name == "" {
			return f
		}
		f[name] = v.list("Filter." + strconv.Itoa(n) + ".Value")
	}
}

func (v *view) address(id string) *Address {
	if v.foreign {
		return nil
	}
	return v.s.addresses[id]
}

func (v *view) instance(id string) *Instance {
	if v.foreign {
		return nil
	}
	return v.s.instances[id]
}

func (v *view) iface(id string) *Interface {
	if v.foreign {
		return nil
	}
	return v.s.interfaces[id]
}

func (v *view) routeTable(id string) *RouteTable {
	if v.foreign {
		return nil
	}
	return v.s.routeTables[id]
}

func (v *view) subnet(id string) *Subnet {
	if v.foreign {
		return nil
	}
	return v.s.subnets[id]
}

func (v *view) required(name string) (string, *apiError) {
	val := v.form.Get(name)
	if val == "" {
		return "", errorf(400, "MissingParameter", "The request must contain the parameter %s", name)
	}
	return val, nil
}

func notFound(kind, code, id string) *apiError {
	return errorf(400, code, "The %s '%s' does not exist", kind, id)
}

type handlerFunc func(v *view) (any, *apiError)

func (s *Server) actions() map[string]handlerFunc {
	return map[string]handlerFunc{
		"DescribeAddresses":         describeAddresses,
		"AssociateAddress":          associateAddress,
		"DescribeNetworkInterfaces": describeNetworkInterfaces,
		"DetachNetworkInterface":    detachNetworkInterface,
		"AttachNetworkInterface":    attachNetworkInterface,
		"AssignPrivateIpAddresses":  assignPrivateIPAddresses,
		"DescribeRouteTables":       describeRouteTables,
		"ReplaceRoute":              replaceRoute,
		"StopInstances":             stopInstances,
		"DescribeInstances":         describeInstances,
		"DescribeSubnets":           describeSubnets,
	}
}

// ---- Elastic IPs

type addressXML struct {
	AllocationID       string `xml:"allocationId"`
	PublicIP           string `xml:"publicIp"`
	Domain             string `xml:"domain"`
	AssociationID      string `xml:"associationId,omitempty"`
	InstanceID         string `xml:"instanceId,omitempty"`
	NetworkInterfaceID string `xml:"networkInterfaceId,omitempty"`
	PrivateIPAddress   string `xml:"privateIpAddress,omitempty"`
}

type describeAddressesResponse struct {
	XMLName   xml.Name     `xml:"DescribeAddressesResponse"`
	Addresses []addressXML `xml:"addressesSet>item"`
}

func describeAddresses(v *view) (any, *apiError) {
	resp := describeAddressesResponse{}
	for _, id := range v.list("AllocationId") {
		a := v.address(id)
		if a == nil {
			return nil, errorf(400, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
		}
		resp.Addresses = append(resp.Addresses, addressXML{
			AllocationID: a.AllocationID, PublicIP: a.PublicIP, Domain: "vpc",
			AssociationID: a.AssociationID, InstanceID: a.InstanceID,
			NetworkInterfaceID: a.NetworkInterfaceID, PrivateIPAddress: a.PrivateIP,
		})
	}
	return resp, nil
}

type associateAddressResponse struct {
	XMLName       xml.Name `xml:"AssociateAddressResponse"`
	Return        bool     `xml:"return"`
	AssociationID string   `xml:"associationId"`
}

func associateAddress(v *view) (any, *apiError) {
	id, err := v.required("AllocationId")
	if err != nil {
		return nil, err
	}
	a := v.address(id)
	if a == nil {
		return nil, errorf(400, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
	}
	var eni *Interface
	var instanceID, privateIP string
	switch {
	case v.form.Get("NetworkInterfaceId") != "":
		eniID := v.form.Get("NetworkInterfaceId")
		eni = v.iface(eniID)
		if eni == nil {
			return nil, notFound("network interface", "InvalidNetworkInterfaceID.NotFound", eniID)
		}
		privateIP = v.form.Get("PrivateIpAddress")
		if privateIP == "" {
			privateIP = eni.PrivateIPs[0]
		} else if !slices.Contains(eni.PrivateIPs, privateIP) {
			return nil, errorf(400, "InvalidParameterValue", "The private IP address %s is not assigned to network interface %s", privateIP, eniID)
		}
		if eni.Attachment != nil {
			instanceID = eni.Attachment.InstanceID
		}
	case v.form.Get("InstanceId") != "":
		instanceID = v.form.Get("InstanceId")
		in := v.instance(instanceID)
		if in == nil {
			return nil, notFound("instance ID", "InvalidInstanceID.NotFound", instanceID)
		}
		if in.State != "running" && in.State != "stopped" {
			return nil, errorf(400, "IncorrectInstanceState", "The instance '%s' is not in a valid state for this operation", instanceID)
		}
		for _, i := range v.s.interfaces {
			if i.Attachment != nil && i.Attachment.InstanceID == instanceID && i.Attachment.DeviceIndex == 0 {
				eni = i
			}
		}
		if eni == nil {
			return nil, errorf(400, "InvalidInstanceID", "The instance '%s' has no primary network interface", instanceID)
		}
		privateIP = eni.PrivateIPs[0]
	default:
		return nil, errorf(400, "MissingParameter", "Either InstanceId or NetworkInterfaceId must be specified")
	}
	if a.AssociationID != "" && v.form.Get("AllowReassociation") != "true" &&
		(a.NetworkInterfaceID != eni.ID || a.PrivateIP != privateIP) {
		return nil, errorf(400, "Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", id, a.AssociationID)
	}
	v.s.seq++
	a.AssociationID = fmt.Sprintf("eipassoc-%08x", v.s.seq)
	a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = instanceID, eni.ID, privateIP
	return associateAddressResponse{Return: true, AssociationID: a.AssociationID}, nil
}

// ---- Network interfaces

type privateIPXML struct {
	PrivateIPAddress string `xml:"privateIpAddress"`
	Primary          bool   `xml:"primary"`
}

type attachmentXML struct {
	AttachmentID string `xml:"attachmentId"`
	InstanceID   string `xml:"instanceId"`
	DeviceIndex  int32  `xml:"deviceIndex"`
	Status       string `xml:"status"`
}

type interfaceXML struct {
	NetworkInterfaceID string         `xml:"networkInterfaceId"`
	SubnetID           string         `xml:"subnetId"`
	VPCID              string         `xml:"vpcId"`
	AvailabilityZone   string         `xml:"availabilityZone"`
	Status             string         `xml:"status"`
	PrivateIPAddress   string         `xml:"privateIpAddress"`
	SourceDestCheck    bool           `xml:"sourceDestCheck"`
	Attachment         *attachmentXML `xml:"attachment,omitempty"`
	PrivateIPs         []privateIPXML `xml:"privateIpAddressesSet>item"`
}

func interfaceView(i *Interface) interfaceXML {
	x := interfaceXML{
		NetworkInterfaceID: i.ID, SubnetID: i.SubnetID, VPCID: i.VPCID, AvailabilityZone: i.AZ,
		Status: i.Status(), SourceDestCheck: i.SourceDestCheck,
	}
	for n, ip := range i.PrivateIPs {
		if n == 0 {
			x.PrivateIPAddress = ip
		}
		x.PrivateIPs = append(x.PrivateIPs, privateIPXML{ip, n == 0})
	}
	if a := i.Attachment; a != nil {
		x.Attachment = &attachmentXML{a.ID, a.InstanceID, a.DeviceIndex, a.Status}
	}
	return x
}

type describeNetworkInterfacesResponse struct {
	XMLName    xml.Name       `xml:"DescribeNetworkInterfacesResponse"`
	Interfaces []interfaceXML `xml:"networkInterfaceSet>item"`
}

func describeNetworkInterfaces(v *view) (any, *apiError) {
	ids := v.list("NetworkInterfaceId")
	var found []*Interface
	if len(ids) > 0 {
		for _, id := range ids {
			i := v.iface(id)
			if i == nil {
				return nil, notFound("network interface", "InvalidNetworkInterfaceID.NotFound", id)
			}
			found = append(found, i)
		}
	} else if !v.foreign {
		for _, i := range v.s.interfaces {
			found = append(found, i)
		}
		slices.SortFunc(found, func(a, b *Interface) int { return strings.Compare(a.ID, b.ID) })
	}
	for name, vals := range v.filters() {
		var keep []*Interface
		for _, i := range found {
			match := false
			for _, val := range vals {
				switch name {
				case "addresses.private-ip-address", "private-ip-address":
					match = match || slices.Contains(i.PrivateIPs, val)
				case "attachment.instance-id":
					match = match || i.Attachment != nil && i.Attachment.InstanceID == val
				case "subnet-id":
					match = match || i.SubnetID == val
				case "vpc-id":
					match = match || i.VPCID == val
				default:
					return nil, errorf(400, "InvalidParameterValue", "The filter '%s' is invalid", name)
				}
			}
			if match {
				keep = append(keep, i)
			}
		}
		found = keep
	}
	resp := describeNetworkInterfacesResponse{}
	for _, i := range found {
		resp.Interfaces = append(resp.Interfaces, interfaceView(i))
	}
	return resp, nil
}

type returnResponse struct {
	XMLName xml.Name
	Return  bool `xml:"return"`
}

func ok(name string) returnResponse {
	return returnResponse{XMLName: xml.Name{Local: name}, Return: true}
}

func detachNetworkInterface(v *view) (any, *apiError) {
	id, err := v.required("AttachmentId")
	if err != nil {
		return nil, err
	}
	if !v.foreign {
		for _, i := range v.s.interfaces {
			a := i.Attachment
			if a == nil || a.ID != id {
				continue
			}
			if a.DeviceIndex == 0 {
				return nil, errorf(400, "OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
			}
			if a.Status != "detaching" {
				a.Status = "detaching"
				a.until = v.s.after(v.s.detachDelay)
				if v.s.detachDelay == 0 {
					i.Attachment = nil
				}
			}
			return ok("DetachNetworkInterfaceResponse"), nil
		}
	}
	return nil, notFound("attachment ID", "InvalidAttachmentID.NotFound", id)
}

type attachNetworkInterfaceResponse struct {
	XMLName          xml.Name `xml:"AttachNetworkInterfaceResponse"`
	AttachmentID     string   `xml:"attachmentId"`
	NetworkCardIndex int32    `xml:"networkCardIndex"`
}

func attachNetworkInterface(v *view) (any, *apiError) {
	id, err := v.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	instanceID, err := v.required("InstanceId")
	if err != nil {
		return nil, err
	}
	idx, err := v.required("DeviceIndex")
	if err != nil {
		return nil, err
	}
	dev, perr := strconv.Atoi(idx)
	if perr != nil || dev < 0 {
		return nil, errorf(400, "InvalidParameterValue", "Invalid value '%s' for DeviceIndex", idx)
	}
	i := v.iface(id)
	if i == nil {
		return nil, notFound("network interface", "InvalidNetworkInterfaceID.NotFound", id)
	}
	in := v.instance(instanceID)
	if in == nil {
		return nil, notFound("instance ID", "InvalidInstanceID.NotFound", instanceID)
	}
	if i.Attachment != nil {
		return nil, errorf(400, "InvalidNetworkInterface.InUse", "Interface: [%s] in use.", id)
	}
	if in.AZ != i.AZ {
		return nil, errorf(400, "InvalidParameterCombination", "The network interface and the instance are not in the same availability zone")
	}
	for _, o := range v.s.interfaces {
		if o.Attachment != nil && o.Attachment.InstanceID == instanceID && int(o.Attachment.DeviceIndex) == dev {
			return nil, errorf(400, "InvalidParameterValue", "Instance '%s' already has an interface attached at device index '%d'.", instanceID, dev)
		}
	}
	v.s.seq++
	a := &Attachment{ID: fmt.Sprintf("eni-attach-%08x", v.s.seq), InstanceID: instanceID, DeviceIndex: int32(dev), Status: "attaching"}
	a.until = v.s.after(v.s.attachDelay)
	if v.s.attachDelay == 0 {
		a.Status, a.until = "attached", time.Time{}
	}
	i.Attachment = a
	return attachNetworkInterfaceResponse{AttachmentID: a.ID}, nil
}

type assignPrivateIPAddressesResponse struct {
	XMLName            xml.Name `xml:"AssignPrivateIpAddressesResponse"`
	NetworkInterfaceID string   `xml:"networkInterfaceId"`
	Assigned           []struct {
		PrivateIPAddress string `xml:"privateIpAddress"`
	} `xml:"assignedPrivateIpAddressesSet>item"`
}

func assignPrivateIPAddresses(v *view) (any, *apiError) {
	id, err := v.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	i := v.iface(id)
	if i == nil {
		return nil, notFound("network interface", "InvalidNetworkInterfaceID.NotFound", id)
	}
	ips := v.list("PrivateIpAddress")
	if len(ips) == 0 {
		return nil, errorf(400, "MissingParameter", "The request must contain the parameter PrivateIpAddress or SecondaryPrivateIpAddressCount")
	}
	reassign := v.form.Get("AllowReassignment") == "true"
	var sn *Subnet
	if i.SubnetID != "" {
		sn = v.subnet(i.SubnetID)
	}
	for _, ip := range ips {
		addr, perr := netip.ParseAddr(ip)
		if perr != nil {
			return nil, errorf(400, "InvalidParameterValue", "Invalid IP address %q", ip)
		}
		if sn != nil {
			if p, perr := netip.ParsePrefix(sn.CIDR); perr == nil && !p.Contains(addr) {
				return nil, errorf(400, "InvalidParameterValue", "Address %s does not fall within the subnet's address range", ip)
			}
		}
		for _, o := range v.s.interfaces {
			if o == i || !slices.Contains(o.PrivateIPs, ip) || o.VPCID != i.VPCID {
				continue
			}
			if o.PrivateIPs[0] == ip {
				return nil, errorf(400, "InvalidParameterValue", "Address %s is the primary address of %s", ip, o.ID)
			}
			if !reassign {
				return nil, errorf(400, "PrivateIpAddressInUse", "Address %s is in use.", ip)
			}
		}
	}
	resp := assignPrivateIPAddressesResponse{NetworkInterfaceID: id}
	for _, ip := range ips {
		for _, o := range v.s.interfaces {
			if o != i && o.VPCID == i.VPCID {
				o.PrivateIPs = slices.DeleteFunc(o.PrivateIPs, func(x string) bool { return x == ip })
			}
		}
		if !slices.Contains(i.PrivateIPs, ip) {
			i.PrivateIPs = append(i.PrivateIPs, ip)
		}
		resp.Assigned = append(resp.Assigned, struct {
			PrivateIPAddress string `xml:"privateIpAddress"`
		}{ip})
	}
	return resp, nil
}

// ---- Route tables

type routeXML struct {
	DestinationCidrBlock string `xml:"destinationCidrBlock"`
	GatewayID            string `xml:"gatewayId,omitempty"`
	InstanceID           string `xml:"instanceId,omitempty"`
	NetworkInterfaceID   string `xml:"networkInterfaceId,omitempty"`
	State                string `xml:"state"`
	Origin               string `xml:"origin"`
}

type routeTableXML struct {
	RouteTableID string     `xml:"routeTableId"`
	VPCID        string     `xml:"vpcId"`
	Routes       []routeXML `xml:"routeSet>item"`
}

type describeRouteTablesResponse struct {
	XMLName     xml.Name        `xml:"DescribeRouteTablesResponse"`
	RouteTables []routeTableXML `xml:"routeTableSet>item"`
}

func describeRouteTables(v *view) (any, *apiError) {
	resp := describeRouteTablesResponse{}
	for _, id := range v.list("RouteTableId") {
		rt := v.routeTable(id)
		if rt == nil {
			return nil, notFound("route table ID", "InvalidRouteTableID.NotFound", id)
		}
		x := routeTableXML{RouteTableID: rt.ID, VPCID: rt.VPCID}
		for _, r := range rt.Routes {
			state := "active"
			if r.NetworkInterfaceID != "" {
				if i := v.s.interfaces[r.NetworkInterfaceID]; i == nil || i.Attachment == nil {
					state = "blackhole"
				}
			}
			origin := "CreateRoute"
			if r.GatewayID == "local" {
				origin = "CreateRouteTable"
			}
			x.Routes = append(x.Routes, routeXML{r.Destination, r.GatewayID, r.InstanceID, r.NetworkInterfaceID, state, origin})
		}
		resp.RouteTables = append(resp.RouteTables, x)
	}
	return resp, nil
}

func replaceRoute(v *view) (any, *apiError) {
	id, err := v.required("RouteTableId")
	if err != nil {
		return nil, err
	}
	dest, err := v.required("DestinationCidrBlock")
	if err != nil {
		return nil, err
	}
	eniID, err := v.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	rt := v.routeTable(id)
	if rt == nil {
		return nil, notFound("route table ID", "InvalidRouteTableID.NotFound", id)
	}
	eni := v.iface(eniID)
	if eni == nil {
		return nil, notFound("network interface", "InvalidNetworkInterfaceID.NotFound", eniID)
	}
	for n := range rt.Routes {
		r := &rt.Routes[n]
		if r.Destination != dest {
			continue
		}
		r.NetworkInterfaceID, r.GatewayID, r.InstanceID = eniID, "", ""
		if eni.Attachment != nil {
			r.InstanceID = eni.Attachment.InstanceID
		}
		return ok("ReplaceRouteResponse"), nil
	}
	return nil, errorf(400, "InvalidRoute.NotFound", "There is no route defined for '%s' in the route table. Use CreateRoute instead.", dest)
}

// ---- Instances

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

type stateXML struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func state(name string) stateXML { return stateXML{stateCodes[name], name} }

type stateChangeXML struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  stateXML `xml:"currentState"`
	PreviousState stateXML `xml:"previousState"`
}

type stopInstancesResponse struct {
	XMLName   xml.Name         `xml:"StopInstancesResponse"`
	Instances []stateChangeXML `xml:"instancesSet>item"`
}

func stopInstances(v *view) (any, *apiError) {
	resp := stopInstancesResponse{}
	ids := v.list("InstanceId")
	for _, id := range ids {
		if v.instance(id) == nil {
			return nil, notFound("instance ID", "InvalidInstanceID.NotFound", id)
		}
	}
	for _, id := range ids {
		in := v.instance(id)
		prev := in.State
		switch in.State {
		case "running", "pending":
			in.State = "stopping"
			in.stoppedAt = v.s.after(v.s.stopDelay)
			if v.s.stopDelay == 0 {
				in.State = "stopped"
			}
		case "terminated", "shutting-down":
			return nil, errorf(400, "IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", id)
		}
		resp.Instances = append(resp.Instances, stateChangeXML{id, state(in.State), state(prev)})
	}
	return resp, nil
}

type instanceIfaceXML struct {
	NetworkInterfaceID string `xml:"networkInterfaceId"`
	SubnetID           string `xml:"subnetId"`
	Status             string `xml:"status"`
	SourceDestCheck    bool   `xml:"sourceDestCheck"`
	Attachment         struct {
		AttachmentID string `xml:"attachmentId"`
		DeviceIndex  int32  `xml:"deviceIndex"`
		Status       string `xml:"status"`
	} `xml:"attachment"`
}

type instanceXML struct {
	InstanceID    string   `xml:"instanceId"`
	InstanceState stateXML `xml:"instanceState"`
	Placement     struct {
		AvailabilityZone string `xml:"availabilityZone"`
	} `xml:"placement"`
	SubnetID         string             `xml:"subnetId,omitempty"`
	VPCID            string             `xml:"vpcId,omitempty"`
	PrivateIPAddress string             `xml:"privateIpAddress,omitempty"`
	SourceDestCheck  bool               `xml:"sourceDestCheck"`
	Interfaces       []instanceIfaceXML `xml:"networkInterfaceSet>item"`
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	Reservations []reservationXML `xml:"reservationSet>item"`
}

func describeInstances(v *view) (any, *apiError) {
	resp := describeInstancesResponse{}
	for _, id := range v.list("InstanceId") {
		in := v.instance(id)
		if in == nil {
			return nil, notFound("instance ID", "InvalidInstanceID.NotFound", id)
		}
		x := instanceXML{InstanceID: in.ID, InstanceState: state(in.State), SubnetID: in.SubnetID, VPCID: in.VPCID, SourceDestCheck: in.SourceDestCheck}
		x.Placement.AvailabilityZone = in.AZ
		var attached []*Interface
		for _, i := range v.s.interfaces {
			if i.Attachment != nil && i.Attachment.InstanceID == in.ID {
				attached = append(attached, i)
			}
		}
		slices.SortFunc(attached, func(a, b *Interface) int { return int(a.Attachment.DeviceIndex - b.Attachment.DeviceIndex) })
		for _, i := range attached {
			ix := instanceIfaceXML{NetworkInterfaceID: i.ID, SubnetID: i.SubnetID, Status: i.Status(), SourceDestCheck: i.SourceDestCheck}
			ix.Attachment.AttachmentID = i.Attachment.ID
			ix.Attachment.DeviceIndex = i.Attachment.DeviceIndex
			ix.Attachment.Status = i.Attachment.Status
			if i.Attachment.DeviceIndex == 0 && len(i.PrivateIPs) > 0 {
				x.PrivateIPAddress = i.PrivateIPs[0]
			}
			x.Interfaces = append(x.Interfaces, ix)
		}
		resp.Reservations = append(resp.Reservations, reservationXML{ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: "123456789012", Instances: []instanceXML{x}})
	}
	return resp, nil
}

type subnetXML struct {
	SubnetID         string `xml:"subnetId"`
	VPCID            string `xml:"vpcId"`
	AvailabilityZone string `xml:"availabilityZone"`
	CidrBlock        string `xml:"cidrBlock"`
	State            string `xml:"state"`
}

type describeSubnetsResponse struct {
	XMLName xml.Name    `xml:"DescribeSubnetsResponse"`
	Subnets []subnetXML `xml:"subnetSet>item"`
}

func describeSubnets(v *view) (any, *apiError) {
	resp := describeSubnetsResponse{}
	for _, id := range v.list("SubnetId") {
		sn := v.subnet(id)
		if sn == nil {
			return nil, notFound("subnet ID", "InvalidSubnetID.NotFound", id)
		}
		resp.Subnets = append(resp.Subnets, subnetXML{sn.ID, sn.VPCID, sn.AZ, sn.CIDR, "available"})
	}
	return resp, nil
}
