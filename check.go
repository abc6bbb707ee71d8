package fstaid

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// A Check probes one thing: the target (primary), the target through
// another vantage point (secondary), or the monitor's own connectivity
// (self). It returns nil when the probe passes.
//
// The Monitor calls a Check from one goroutine at a time, never
// concurrently with itself, with a context that carries the check's
// timeout. A Check must return promptly once ctx is done: a Check that
// ignores ctx stalls the monitoring loop, which the systemd watchdog is
// there to catch. A failure may carry an exit status for handlers by
// returning a *CheckError; any other error reports exit status 1. A
// panic in a Check is recovered and counts as a failure.
type Check interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts an ordinary function to the Check interface.
type CheckFunc func(ctx context.Context) error

// Check calls f(ctx).
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// CheckError is a check failure with the facts a handler sees.
type CheckError struct {
	// ExitStatus is what the handler sees as the check's exit status:
	// a command's exit status, 1 for a failed native check, -1 for a
	// command killed by a signal, 127 for a command that cannot start.
	ExitStatus int
	// HTTPStatus is the status code of a native HTTP check, 0 otherwise.
	HTTPStatus int
	// Err is the underlying cause.
	Err error
}

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit status %d", e.ExitStatus)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ", HTTP status %d", e.HTTPStatus)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *CheckError) Unwrap() error { return e.Err }

// Result is the outcome of one check, as the Monitor observed it.
type Result struct {
	// Name names the check: "primary", "secondary" or "self". (Its JSON
	// key stays "check", as the /status API has always shown it.)
	Name string `json:"check"`
	// Passed reports whether the check passed.
	Passed bool `json:"passed"`
	// ExitStatus is 0 for a pass; see CheckError for failures. A check
	// that hit its timeout reports -1.
	ExitStatus int `json:"exit_status"`
	// TimedOut reports that the check exceeded its timeout. It is decided
	// from the check's context deadline, never from error text.
	TimedOut bool `json:"timed_out"`
	// HTTPStatus is the response status of a native HTTP check.
	HTTPStatus int `json:"http_status,omitempty"`
	// Error is the failure's text, empty for a pass.
	Error string `json:"error,omitempty"`
	// Start and Duration time the check (the last attempt, for the
	// primary check). A check that never ran (a manual failover's, a
	// secondary that is not configured) has a zero Start, and its JSON
	// leaves both out rather than show zero times.
	Start    time.Time     `json:"start,omitzero"`
	Duration time.Duration `json:"duration_ns,omitzero"`
	// Attempts counts the primary check's attempts in this round.
	Attempts int `json:"attempts,omitempty"`
}

// Failed reports whether r is a check that ran and failed; false for a
// nil r (a check that did not run, or is not configured).
func (r *Result) Failed() bool { return r != nil && !r.Passed }

// skippedResult is what handlers see for a check that is not configured:
// exit status -1, not timed out (as the original fstaid reports it).
func skippedResult(name string) Result {
	return Result{Name: name, ExitStatus: -1}
}

// CommandCheck runs a command; exit status 0 passes. It runs in its own
// process group, and the whole group is killed with SIGKILL at the
// timeout and again after the command exits, so nothing it spawned
// outlives it (a child that calls setsid escapes the group; under systemd
// the service's cgroup still holds it). Its output is drained
// concurrently and logged, bounded, so a chatty command never blocks.
type CommandCheck struct {
	cmd commandLine
	// LogStdout logs the command's standard output (the original's
	// "debug" mode); standard error is always logged.
	LogStdout bool
}

var _ Check = (*CommandCheck)(nil)

// Command returns a check that runs cmdline, split into words as the
// original fstaid did (no shell: use sh -c for pipelines). A command
// line that cannot be parsed is reported by New.
func Command(cmdline string) *CommandCheck {
	return &CommandCheck{cmd: newCommandLine(cmdline), LogStdout: true}
}

func (c *CommandCheck) validate() error { return c.cmd.err }

// Err returns why the command line cannot be run (a quote left open, a
// shell operator, nothing at all), nil when it can: what New reports, for
// callers that validate a configuration before building a Monitor.
func (c *CommandCheck) Err() error { return c.cmd.err }

// Check runs the command. A failure is a *CheckError with the exit status.
func (c *CommandCheck) Check(ctx context.Context) error {
	if c.cmd.err != nil {
		return &CheckError{ExitStatus: 127, Err: c.cmd.err}
	}
	status, err := runCommand(ctx, loggerFrom(ctx), c.cmd.args, nil, c.LogStdout)
	if status == 0 && err == nil {
		return nil
	}
	return &CheckError{ExitStatus: status, Err: err}
}

// String returns the command line.
func (c *CommandCheck) String() string { return c.cmd.String() }

// HTTPCheck is a native HTTP check: a GET that passes when the status is
// below 400, as `curl -f` does. Every check uses a fresh connection (a
// kept-alive connection can hide a dead target), follows no redirects and
// ignores HTTP_PROXY and friends (an environment proxy would move the
// vantage point); set Proxy to check through a bastion, as
// `curl -x bastion:8080 http://target/` does.
//
// Credentials: User (or userinfo in URL, http://user:password@host/) is
// sent as basic authentication, an Authorization in Header as it is. A
// URL is only ever shown with its password replaced by "xxxxx"
// (url.URL.Redacted): in String, in every error, and so in Result.Error,
// logs and handler environments. The Proxy's userinfo is sent as
// Proxy-Authorization and never shown either.
//
// Set the fields before the first Check; they must not change after it.
type HTTPCheck struct {
	// URL is the address checked.
	URL string
	// Proxy, when set, is the HTTP proxy the request goes through.
	Proxy *url.URL
	// Header is added to the request (Host, authorisation, ...).
	Header http.Header
	// User, when set, is sent as HTTP basic authentication
	// (url.UserPassword(name, password)), in place of any userinfo in
	// URL. Setting it together with an Authorization header is an
	// error New reports. Nil (the default) sends URL's userinfo, if any.
	User *url.Userinfo
	// TLSClientConfig configures HTTPS; nil means the defaults.
	TLSClientConfig *tls.Config

	once   sync.Once
	client *http.Client
	req    *http.Request
	err    error
	// shown is URL as errors show it: the password redacted.
	shown string

	// The direct path (plain http, no proxy): the request as it goes on
	// the wire, serialised once, and the address dialled.
	direct bool
	wire   []byte
	addr   string
	dialer net.Dialer
}

var _ Check = (*HTTPCheck)(nil)

// HTTP returns a native HTTP check of rawURL.
func HTTP(rawURL string) *HTTPCheck { return &HTTPCheck{URL: rawURL} }

func (c *HTTPCheck) validate() error {
	c.init()
	return c.err
}

func (c *HTTPCheck) init() {
	c.once.Do(func() {
		c.shown = redactURL(c.URL)
		u, err := url.Parse(c.URL)
		if err != nil {
			// url.Parse's own error quotes the whole URL, password
			// included: keep only its reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			c.err = fmt.Errorf("HTTP check URL %s: %w", c.shown, err)
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			c.err = fmt.Errorf("HTTP check URL %s: want http:// or https:// and a host", c.shown)
			return
		}
		if c.User != nil && c.Header.Get("Authorization") != "" {
			c.err = fmt.Errorf("HTTP check %s: set User or an Authorization header, not both", c.shown)
			return
		}
		// The credentials travel in the Authorization header only, never
		// in the request's URL: no error net/http makes can show them.
		auth := c.User
		if auth == nil {
			auth = u.User
		}
		u.User = nil
		var proxy func(*http.Request) (*url.URL, error)
		if c.Proxy != nil {
			proxy = http.ProxyURL(c.Proxy)
		}
		c.client = &http.Client{
			Transport: &http.Transport{
				Proxy:               proxy,
				DialContext:         (&net.Dialer{}).DialContext,
				DisableKeepAlives:   true,
				TLSClientConfig:     c.TLSClientConfig,
				TLSHandshakeTimeout: 0, // the check's context bounds it
			},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			c.err = fmt.Errorf("HTTP check URL: %w", err)
			return
		}
		for k, v := range c.Header {
			req.Header[k] = v
		}
		if h := c.Header.Get("Host"); h != "" {
			req.Host = h
		}
		// As net/http does with userinfo: an explicit Authorization wins.
		if auth != nil && req.Header.Get("Authorization") == "" {
			pw, _ := auth.Password()
			req.SetBasicAuth(auth.Username(), pw)
		}
		req.Header.Set("User-Agent", "fstaid")
		c.req = req
		if u.Scheme == "http" && c.Proxy == nil {
			// What http.Client and its Transport (keep-alives off) send.
			wreq := req.Clone(context.Background())
			wreq.Close = true
			if wreq.Header.Get("Accept-Encoding") == "" && wreq.Header.Get("Range") == "" {
				wreq.Header.Set("Accept-Encoding", "gzip")
			}
			var b bytes.Buffer
			if err := wreq.Write(&b); err == nil {
				port := u.Port()
				if port == "" {
					port = "80"
				}
				c.direct, c.wire, c.addr = true, b.Bytes(), net.JoinHostPort(u.Hostname(), port)
			}
		}
	})
}

// bufReaders recycles the direct path's response readers.
var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// checkDirect is Check for plain http without a proxy: a fresh
// connection, the request written once, the response read with
// net/http's own parser, the body drained (bounded) and the connection
// closed. It does what http.Client does for this request with
// keep-alives off, without the Transport's per-request connection
// machinery (two goroutines, channels and buffers for each request).
func (c *HTTPCheck) checkDirect(ctx context.Context) error {
	fail := func(err error) error {
		if ctx.Err() != nil {
			err = ctx.Err() // as the Transport reports a cancelled request
		}
		return &CheckError{ExitStatus: 1, Err: &url.Error{Op: "Get", URL: c.shown, Err: err}}
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	// Only ctx ends the exchange (no deadline of the connection's own
	// that could fire a moment before ctx's): a timeout is then always
	// seen as one.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	if _, err := conn.Write(c.wire); err != nil {
		return fail(err)
	}
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() {
		br.Reset(nil)
		bufReaders.Put(br)
	}()
	// Informational answers (100 Continue, 103 Early Hints) precede the
	// real one; the Transport skips them too (101 is final).
	for range 6 {
		resp, err := http.ReadResponse(br, c.req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return c.judge(resp)
	}
	return fail(errors.New("too many informational responses"))
}

// maxHTTPBody bounds how much of a response body is read before closing.
const maxHTTPBody = 64 << 10

// Check performs the request.
func (c *HTTPCheck) Check(ctx context.Context) error {
	c.init()
	if c.err != nil {
		return &CheckError{ExitStatus: 1, Err: c.err}
	}
	if c.direct {
		return c.checkDirect(ctx)
	}
	resp, err := c.client.Do(c.req.WithContext(ctx))
	if err != nil {
		// The client's *url.Error names the request's URL; name the
		// check's, as the direct path does.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = c.shown
		}
		return &CheckError{ExitStatus: 1, Err: err}
	}
	return c.judge(resp)
}

// judge ends both paths: it drains (bounded) and closes the body, then
// fails a status of 400 or more, as curl -f does.
func (c *HTTPCheck) judge(resp *http.Response) error {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return &CheckError{ExitStatus: 1, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("GET %s: %s", c.shown, resp.Status)}
	}
	return nil
}

// String returns the URL with its password, if any, redacted.
func (c *HTTPCheck) String() string { return redactURL(c.URL) }

// redactURL returns rawURL as it may be shown: the password of its
// userinfo replaced by "xxxxx", as url.URL.Redacted does. A URL that
// does not parse is redacted by hand, keeping only what precedes the
// first colon before its last @ (the user name): errors quote it too.
func redactURL(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		scheme, rest = "", rawURL
	} else {
		scheme += "://"
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return rawURL
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return rawURL
	}
	return scheme + user + ":xxxxx" + rest[at:]
}

// TCPCheck is a native TCP check: connect, then close.
type TCPCheck struct {
	// Address is host:port.
	Address string
	dialer  net.Dialer
}

var _ Check = (*TCPCheck)(nil)

// TCP returns a native TCP check of address (host:port).
func TCP(address string) *TCPCheck { return &TCPCheck{Address: address} }

func (c *TCPCheck) validate() error {
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("TCP check address: %w", err)
	}
	return nil
}

// Check connects to the address and closes the connection.
func (c *TCPCheck) Check(ctx context.Context) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return &CheckError{ExitStatus: 1, Err: err}
	}
	conn.Close()
	return nil
}

// String returns the address.
func (c *TCPCheck) String() string { return c.Address }
