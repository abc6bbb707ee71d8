package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// statusFlags are `fstaidd status`'s flags.
type statusFlags struct {
	clientFlags
	json   bool
	rounds int
}

// toolStatus is `fstaidd status -json`: the daemon's GET /status as it
// answered, or why it did not; then what the tool read itself when it did
// not: the lock file, and with [etcd] the shared view.
type toolStatus struct {
	URL         string          `json:"url"`
	Daemon      *statusResponse `json:"daemon,omitempty"`
	DaemonError string          `json:"daemon_error,omitempty"`
	// LockFile and Record: the file lock, read when the daemon did not
	// answer and the file may hold the record.
	LockFile    string         `json:"lock_file,omitempty"`
	Record      *fstaid.Record `json:"record,omitempty"`
	RecordError string         `json:"record_error,omitempty"`
	// Etcd is the shared view: the daemon's, else read from etcd.
	Etcd      *etcd.Status `json:"etcd,omitempty"`
	EtcdError string       `json:"etcd_error,omitempty"`
}

// cmdStatus shows the daemon's state, its last rounds and the record, as
// a summary for people or (-json) for machines; when the daemon does not
// answer, the lock and etcd as the tool reads them. Exit 0 when the
// daemon answered, 23 when it did not, 24 when it refused the
// credentials, 78 on a bad config.
func cmdStatus(ctx context.Context, path string, f *statusFlags, out, errOut io.Writer) int {
	cfg, err := loadToolConfig(path)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return exitConfig
	}
	user, password, err := f.login(cfg, false, os.Getenv, errOut)
	if err != nil {
		fmt.Fprintf(errOut, "fstaidd status: %v\n", err)
		return exitUsage
	}
	ts := &toolStatus{URL: daemonURL(cfg, f.addr)}
	code := 0
	resp, body, err := request(ctx, http.MethodGet, ts.URL+"/status", user, password)
	var st statusResponse
	switch {
	case err != nil:
		ts.DaemonError, code = "not reachable: "+err.Error(), exitUnreachable
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		ts.DaemonError, code = resp.Status+": "+message(body), exitAuthRefused
		if password == "" {
			ts.DaemonError += " (" + errNoPassword.Error() + ")"
		}
	case resp.StatusCode != http.StatusOK:
		ts.DaemonError, code = resp.Status+": "+message(body), exitUnreachable
	case json.Unmarshal(body, &st) != nil:
		ts.DaemonError, code = "an answer that is not fstaidd's /status: "+string(body), exitUnreachable
	default:
		ts.Daemon = &st
		ts.Etcd = st.Etcd
		ts.EtcdError = st.EtcdError
	}
	if ts.Daemon == nil {
		if cfg.UsesFileLock() {
			ts.LockFile = cfg.LockFile()
			ts.Record, err = cfg.FileLock.Load(ctx)
			if err != nil {
				ts.RecordError = err.Error()
			}
		}
		if cfg.Etcd != nil {
			ts.Etcd, err = readEtcdStatus(ctx, cfg)
			if err != nil {
				ts.EtcdError = err.Error()
			}
		}
	}
	if f.json {
		data, _ := json.MarshalIndent(ts, "", "  ")
		fmt.Fprintf(out, "%s\n", data)
		return code
	}
	showStatus(out, cfg, ts, f.rounds, time.Now())
	return code
}

// message is the message of a JSON answer, else the answer.
func message(body []byte) string {
	var m struct{ Message string }
	if json.Unmarshal(body, &m) == nil && m.Message != "" {
		return m.Message
	}
	return strings.TrimSpace(string(body))
}

// showStatus writes the summary, in the spirit of crm_mon: who answers,
// the state and since when, the last rounds, the record, etcd.
func showStatus(out io.Writer, cfg *Config, ts *toolStatus, rounds int, now time.Time) {
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	st := ts.Daemon
	if st == nil {
		p("daemon at %s: %s", ts.URL, ts.DaemonError)
		switch {
		case ts.LockFile == "":
			p("lock: in etcd (the lock directory is not used): see etcd below")
		case ts.RecordError != "":
			p("%s %s: %s", lockFileName(cfg), ts.LockFile, ts.RecordError)
		case ts.Record == nil:
			p("%s %s: free", lockFileName(cfg), ts.LockFile)
		default:
			p("%s %s: LOCKED", lockFileName(cfg), ts.LockFile)
			showRecord(p, "", "failover record", ts.Record, now)
		}
	} else {
		p("fstaidd %s, pid %d, at %s", st.Version, st.PID, ts.URL)
		line := fmt.Sprintf("target %s: %s", st.Target, strings.ToUpper(string(st.State)))
		if !st.Since.IsZero() {
			line += " since " + when(st.Since, now)
		}
		if st.Reason != "" {
			line += ": " + st.Reason
		}
		p("%s", line)
		p("lock: %s", st.Lock)
		showReadiness(p, st, now)
		showRounds(p, st, rounds)
		if st.Record == nil {
			p("failover record: none")
		} else {
			showRecord(p, "", "failover record", st.Record, now)
		}
	}
	if ts.Etcd != nil || ts.EtcdError != "" {
		showEtcd(p, ts.Etcd, ts.EtcdError, now)
	}
}

func lockFileName(cfg *Config) string {
	if cfg.Etcd != nil {
		return `fallback lock (on_unavailable = "local-lock")`
	}
	return "lock"
}

// when shows a past time and how long ago.
func when(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05 MST"), now.Sub(t).Round(time.Second))
}

func showRounds(p func(string, ...any), st *statusResponse, n int) {
	rounds := st.RecentRounds
	if len(rounds) > n {
		rounds = rounds[:max(n, 0)]
	}
	if len(rounds) == 0 {
		p("rounds: %d run", st.Rounds)
		return
	}
	p("rounds: %d run; the last %d, newest first:", st.Rounds, len(rounds))
	for _, r := range rounds {
		var checks []string
		for _, res := range roundResults(&r) {
			if res != nil {
				checks = append(checks, describeResult(res))
			}
		}
		p("  #%-6d %s  %-23s %s", r.Number, r.Start.Local().Format("15:04:05.000"), r.Verdict, strings.Join(checks, "; "))
	}
}

// describeResult is one check's result and latency, on one line.
func describeResult(res *fstaid.Result) string {
	s := res.Name + " "
	switch {
	case res.Passed:
		s += "pass"
	case res.TimedOut:
		s += "TIMEOUT"
	default:
		s += fmt.Sprintf("FAIL (exit %d)", res.ExitStatus)
	}
	if !res.Start.IsZero() {
		s += " " + res.Duration.Round(10*time.Microsecond).String()
	}
	if res.Attempts > 1 {
		s += fmt.Sprintf(", %d attempts", res.Attempts)
	}
	if res.Error != "" && !res.Passed {
		s += ": " + shorten(res.Error, 120)
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// showRecord shows a failover record under label: what, when, who asked
// and why, each handler's outcome; indent prefixes every line.
func showRecord(out func(string, ...any), indent, label string, rec *fstaid.Record, now time.Time) {
	p := func(format string, args ...any) { out(indent+format, args...) }
	if rec.Legacy {
		p("%s: %s", label, describeRecord(rec))
		return
	}
	p("%s: %s, %s, taken %s by %s pid %d", label, strings.ToUpper(string(rec.State)), rec.Reason(), when(rec.Time, now), rec.Host, rec.PID)
	if ev := rec.Event; ev != nil {
		switch ev.Reason {
		case fstaid.ReasonManual:
			p("  requested by %s (exit status given to the handlers: %d)", orUnknown(ev.RequestedBy), ev.Primary.ExitStatus)
			if rec.Comment != "" {
				p("  reason: %s", rec.Comment)
			}
		default:
			checks := []string{describeResult(&ev.Primary)}
			if ev.Secondary.ExitStatus != -1 || ev.Secondary.Passed || !ev.Secondary.Start.IsZero() {
				checks = append(checks, describeResult(&ev.Secondary))
			}
			if ev.Self != nil {
				checks = append(checks, describeResult(ev.Self))
			}
			p("  checks: %s", strings.Join(checks, "; "))
		}
	}
	if r := rec.Readiness; r != nil {
		p("  readiness before: %s (checked %s)", shorten(r.Summary(), 240), when(r.Checked, now))
	}
	for _, h := range rec.Handlers {
		outcome := "ok"
		if h.Error != "" {
			outcome = "FAILED: " + shorten(h.Error, 160)
		}
		p("  handler %s: %s in %v", h.Name, outcome, h.Duration.Round(time.Millisecond))
	}
	if !rec.Finished.IsZero() {
		p("  finished %s", when(rec.Finished, now))
	}
	if rec.LockLost {
		p("  WARNING: the lock was lost while the handlers ran")
	}
	for _, w := range rec.Warnings {
		p("  WARNING: %s", w)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// showEtcd shows the shared view: the record, its holder, the quorum and
// every monitor's vote.
func showEtcd(p func(string, ...any), es *etcd.Status, errText string, now time.Time) {
	if es == nil {
		p("etcd: %s", errText)
		return
	}
	p("etcd: %s", es.Lock)
	switch {
	case es.Record == nil:
		p("  shared record: none")
	default:
		showRecord(p, "  ", "shared record", es.Record, now)
	}
	if es.Holder != nil {
		p("  holder: %s (%s pid %d) since %s", es.Holder.Monitor, es.Holder.Host, es.Holder.PID, when(es.Holder.Since, now))
	}
	if es.Interrupted {
		p("  WARNING: a failover was interrupted (its holder died mid-handler): check the target and the standby by hand")
	}
	if es.Quorum > 0 {
		p("  quorum %d; live monitors: %s", es.Quorum, orNone(es.Live))
	}
	if len(es.Votes) == 0 {
		p("  votes: none fresh")
	}
	for _, v := range es.Votes {
		line := fmt.Sprintf("  vote of %s: %s", v.Monitor, v.Value)
		if v.Round > 0 {
			line += fmt.Sprintf(" (round %d)", v.Round)
		}
		line += " published " + when(v.Time, now)
		if v.Detail != "" {
			line += ": " + shorten(v.Detail, 120)
		}
		p("%s", line)
	}
	if len(es.Mismatched) > 0 {
		p("  not counted (another target or configuration): %s", strings.Join(es.Mismatched, ", "))
	}
	for _, w := range es.Warnings {
		p("  WARNING: %s", w)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
