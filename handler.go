package fstaid

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// A Handler performs the failover: moves the floating address, notifies
// someone. The Monitor calls its handlers in the order they were given,
// each once per failover, on a context that carries the handler's own
// timeout and that the caller's cancellation does not reach (a failover
// that has begun runs to completion). A panic in a Handler is recovered
// and reported as its failure.
type Handler interface {
	Handle(ctx context.Context, ev *Event) error
}

// HandlerFunc adapts an ordinary function to the Handler interface.
type HandlerFunc func(ctx context.Context, ev *Event) error

// Handle calls f(ctx, ev).
func (f HandlerFunc) Handle(ctx context.Context, ev *Event) error { return f(ctx, ev) }

// Reporter is implemented by handlers that can say what they did in
// their last Handle call. The Monitor calls Report after Handle returns
// and puts the value (which must encode as JSON) in the record's
// HandlerOutcome.Detail.
type Reporter interface {
	Report() any
}

// Reason says why a failover happened.
type Reason string

const (
	// ReasonAuto is a failover decided by the monitoring round.
	ReasonAuto Reason = "auto"
	// ReasonManual is a failover requested through Monitor.Fail.
	ReasonManual Reason = "manual"
)

// Event is what handlers learn about a failover. Handlers must not
// modify it.
type Event struct {
	// Reason is auto or manual.
	Reason Reason `json:"reason"`
	// Target names the monitored target (WithTarget).
	Target string `json:"target"`
	// Time is when the failover was decided.
	Time time.Time `json:"time"`
	// RoundStart is when the deciding round started (zero for a manual
	// failover).
	RoundStart time.Time `json:"round_start,omitzero"`
	// Primary is the primary check's last result; Attempts counts the
	// round's attempts. For a manual failover it carries the requested
	// exit status.
	Primary Result `json:"primary"`
	// Secondary is the secondary check's result; exit status -1 and not
	// timed out when no secondary check is configured.
	Secondary Result `json:"secondary"`
	// Self is the self check of the round's last step, nil when no self
	// check is configured or for a manual failover.
	Self *Result `json:"self,omitempty"`
	// RequestedBy describes who asked for a manual failover.
	RequestedBy string `json:"requested_by,omitempty"`
}

// Args returns the original fstaid's handler arguments:
// PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT.
func (ev *Event) Args() []string {
	return []string{
		strconv.Itoa(ev.Primary.ExitStatus), strconv.FormatBool(ev.Primary.TimedOut),
		strconv.Itoa(ev.Secondary.ExitStatus), strconv.FormatBool(ev.Secondary.TimedOut),
	}
}

// Env returns the event as FSTAID_* environment variables: the facts of
// Args plus the reason, the target, HTTP statuses, errors and timings.
func (ev *Event) Env() []string {
	env := []string{
		"FSTAID_REASON=" + string(ev.Reason),
		"FSTAID_TARGET=" + ev.Target,
		"FSTAID_TIME=" + ev.Time.UTC().Format(time.RFC3339Nano),
	}
	if !ev.RoundStart.IsZero() {
		env = append(env,
			"FSTAID_ROUND_START="+ev.RoundStart.UTC().Format(time.RFC3339Nano),
			"FSTAID_ROUND_DURATION="+seconds(ev.Time.Sub(ev.RoundStart)))
	}
	if ev.RequestedBy != "" {
		env = append(env, "FSTAID_REQUESTED_BY="+ev.RequestedBy)
	}
	add := func(prefix string, r *Result) {
		env = append(env,
			prefix+"_EXIT="+strconv.Itoa(r.ExitStatus),
			prefix+"_TIMED_OUT="+strconv.FormatBool(r.TimedOut))
		if r.HTTPStatus != 0 {
			env = append(env, prefix+"_HTTP_STATUS="+strconv.Itoa(r.HTTPStatus))
		}
		if r.Error != "" {
			env = append(env, prefix+"_ERROR="+oneLine(r.Error))
		}
		if !r.Start.IsZero() {
			env = append(env, prefix+"_DURATION="+seconds(r.Duration))
		}
		if r.Attempts > 0 {
			env = append(env, prefix+"_ATTEMPTS="+strconv.Itoa(r.Attempts))
		}
	}
	add("FSTAID_PRIMARY", &ev.Primary)
	add("FSTAID_SECONDARY", &ev.Secondary)
	if ev.Self != nil {
		add("FSTAID_SELF", ev.Self)
	}
	return env
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// ScriptHandler runs a handler command exactly as the original fstaid
// did: the command line's words followed by
// PRIMARY_EXIT PRIMARY_TIMEDOUT SECONDARY_EXIT SECONDARY_TIMEDOUT
// (for example `1 false -1 false` with no secondary check), with the
// FSTAID_* variables of Event.Env added to the environment. It runs in
// its own process group, killed with SIGKILL at the timeout and after it
// exits; its output is logged, bounded. A non-zero exit is a failure.
type ScriptHandler struct {
	cmd commandLine
}

var _ Handler = (*ScriptHandler)(nil)

// Script returns a handler that runs cmdline (split into words as the
// original did; no shell). A command line that cannot be parsed is
// reported by New, and by Err.
func Script(cmdline string) *ScriptHandler {
	return &ScriptHandler{cmd: newCommandLine(cmdline)}
}

func (h *ScriptHandler) validate() error { return h.cmd.err }

// Err returns why the command line cannot be run (a quote left open, a
// shell operator, nothing at all), nil when it can: what New reports, for
// callers that validate a configuration before building a Monitor.
func (h *ScriptHandler) Err() error { return h.cmd.err }

// Path returns the executable the handler runs, as the command line
// names it (not looked up in PATH), or "" when Err is not nil.
func (h *ScriptHandler) Path() string { return h.cmd.path() }

// Handle runs the command with the event's arguments and environment.
func (h *ScriptHandler) Handle(ctx context.Context, ev *Event) error {
	return h.cmd.script(ctx, ev.Args(), ev.Env())
}

// String returns the command line.
func (h *ScriptHandler) String() string { return h.cmd.String() }
