package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/etcd"
)

// Server timeouts. A /fail request extends its own write deadline to the
// failover's bound, since it answers only once the handlers returned.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// api serves fstaidd's HTTP endpoint.
type api struct {
	monitor *fstaid.Monitor
	auth    *auth // nil: no users (loopback only)
	lock    string
	logger  *slog.Logger
	gather  prometheus.Gatherer
	etcd    *etcd.Store // nil without [etcd]
	recent  *recent     // nil: /status shows no recent rounds
	// stopping ends when fstaidd is told to stop: a /fail still waiting
	// for another attempt then gives up instead of beginning a failover
	// the stop could cut short. Nil: never.
	stopping context.Context
	// reloads has the last reload's outcome for /status; nil: none.
	reloads *reloader
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"message": "pong"})
	})
	mux.Handle("/fail", a.sameOrigin(a.authed(a.adminOnly(http.HandlerFunc(a.fail)))))
	mux.Handle("GET /status", a.sameOrigin(a.authed(http.HandlerFunc(a.status))))
	mux.Handle("GET /metrics", a.sameOrigin(a.authed(promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{}))))
	return mux
}

// sameOrigin refuses, with 403 and a log line, a request that a browser
// marks as sent by another site, before any authentication work: without
// it, any web page open in a browser on the monitor host could POST /fail
// (a "simple" cross-site request needs no CORS preflight), and with no
// [[user]] that fails over. curl, scripts and `fstaidd fail` send neither
// header and pass, as do a browser's own navigations (Sec-Fetch-Site:
// none) and same-origin requests.
func (a *api) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		why := crossSite(r)
		fromBrowser := r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
		if why == "" && a.auth == nil && fromBrowser && !loopbackHost(r.Host) {
			// Without users only loopback is served; a page whose own
			// name resolves to 127.0.0.1 (DNS rebinding) is same-origin
			// with itself, but cannot make its Host a loopback address.
			// Other clients may send any Host.
			why = "Host " + r.Host + " is not a loopback address (no [[user]] is configured)"
		}
		if why != "" {
			a.logger.Warn("cross-site request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
				"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "host", r.Host, "reason", why)
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "cross-site request refused: " + why})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite says why r comes from another site, or "": Sec-Fetch-Site
// cross-site or same-site, or an Origin that is not this server (its
// host:port must be the request's Host; the scheme may be http or https,
// for a TLS proxy in front).
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "cross-site", "same-site":
		return "Sec-Fetch-Site: " + site
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
		!strings.EqualFold(u.Host, r.Host) {
		return fmt.Sprintf("Origin %q is not this server (Host %q)", origin, r.Host)
	}
	return ""
}

// loopbackHost reports whether a Host header names loopback ("" is an
// HTTP/1.0 request without one, which no browser sends).
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *api) authed(next http.Handler) http.Handler {
	if a.auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := a.auth.check(r.Context(), r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="fstaidd"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "authentication required"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

type userKey struct{}

// adminOnly refuses users whose role is not admin (403): a viewer (a
// Prometheus scrape credential, say) may read, never fail over. Without
// users everyone on loopback is admin.
func (a *api) adminOnly(next http.Handler) http.Handler {
	if a.auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := r.Context().Value(userKey{}).(string)
		if role := a.auth.role(user); role != RoleAdmin {
			a.logger.Warn("refused: this user may not fail over", "event", "forbidden", "user", user, "role", role, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusForbidden, failResponse{Message: fmt.Sprintf("user %q has role %q: only an admin may fail over", user, role)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// failResponse is the body of every /fail answer.
type failResponse struct {
	Accepted bool `json:"accepted"`
	// Outcome says what happened, for machines (fstaidd fail's exit
	// status): one of the outcome constants; empty for a refused request.
	Outcome string         `json:"outcome,omitempty"`
	Message string         `json:"message"`
	Record  *fstaid.Record `json:"record,omitempty"`
}

// The outcomes of POST /fail.
const (
	outcomeDone            = "done"             // 200: failed over, every handler succeeded
	outcomeHandlerFailed   = "handler-failed"   // 500: failed over, a handler failed
	outcomeLocked          = "locked"           // 409: a failover already happened
	outcomeLockUnavailable = "lock-unavailable" // 503: the lock could not be taken
	outcomeStopping        = "stopping"         // 503: fstaidd is stopping; nothing began
)

// maxReason bounds POST /fail's reason, and maxFailForm its form body.
const (
	maxReason   = 512
	maxFailForm = 8 << 10
)

// checkReason validates a failover's reason (the comment kept in the
// record): at most maxReason bytes of UTF-8 text on one line.
func checkReason(reason string) error {
	switch {
	case len(reason) > maxReason:
		return fmt.Errorf("is %d bytes long: at most %d", len(reason), maxReason)
	case !utf8.ValidString(reason):
		return errors.New("is not UTF-8 text")
	case strings.ContainsFunc(reason, unicode.IsControl):
		return errors.New("holds a control character (a newline, say): want one line of text")
	}
	return nil
}

func (a *api) fail(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, failResponse{
			Message: "use POST /fail (curl -X POST): a GET that fails over is unsafe, since crawlers and prefetchers send GETs",
		})
		return
	}
	// The parameters come in the query (the original's ?exit=N) or a
	// form body (fstaidd fail sends its reason so).
	r.Body = http.MaxBytesReader(w, r.Body, maxFailForm)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, failResponse{Message: "cannot read the form: " + err.Error()})
		return
	}
	reason := r.Form.Get("reason")
	if err := checkReason(reason); err != nil {
		writeJSON(w, http.StatusBadRequest, failResponse{Message: "reason " + err.Error()})
		return
	}
	code := 1
	if s := r.Form.Get("exit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, failResponse{Message: "exit must be an integer: " + err.Error()})
			return
		}
		code = n
	}
	who := r.RemoteAddr
	if u, ok := r.Context().Value(userKey{}).(string); ok {
		who = u + "@" + who
	}
	// The answer comes once the handlers returned.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.monitor.FailoverBound() + writeTimeout))
	a.logger.Warn("manual failover requested", "requested_by", who, "exit", code, "comment", reason)
	// A client that disconnects must not cut a failover in half; a stop
	// of fstaidd before this failover began ends the wait (Fail runs a
	// begun failover to completion whatever its context does).
	ctx := a.stopping
	if ctx == nil {
		ctx = context.WithoutCancel(r.Context())
	}
	rec, err := a.monitor.Fail(ctx, fstaid.WithExitCode(code), fstaid.WithRequestedBy(who), fstaid.WithComment(reason))
	switch {
	case rec == nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		writeJSON(w, http.StatusServiceUnavailable, failResponse{Outcome: outcomeStopping, Message: "fstaidd is stopping: this request began no failover (one already running finishes: see /status or fstaidd status); ask the next instance"})
	case err == nil:
		writeJSON(w, http.StatusOK, failResponse{Accepted: true, Outcome: outcomeDone, Message: "failed over; every handler succeeded", Record: rec})
	case errors.Is(err, fstaid.ErrHandlerFailed):
		writeJSON(w, http.StatusInternalServerError, failResponse{Accepted: true, Outcome: outcomeHandlerFailed, Message: err.Error(), Record: rec})
	case errors.Is(err, fstaid.ErrLocked):
		writeJSON(w, http.StatusConflict, failResponse{Outcome: outcomeLocked, Message: "a failover already happened; see the record", Record: rec})
	case errors.Is(err, fstaid.ErrLockUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, failResponse{Outcome: outcomeLockUnavailable, Message: err.Error()})
	default:
		writeJSON(w, http.StatusServiceUnavailable, failResponse{Message: err.Error()})
	}
}

// statusResponse is GET /status.
type statusResponse struct {
	fstaid.Status
	Armed bool `json:"armed"`
	// Since is when the monitor entered State.
	Since time.Time `json:"since,omitzero"`
	// RecentRounds are the last rounds (at most recentRounds), newest
	// first.
	RecentRounds []fstaid.Round `json:"recent_rounds,omitempty"`
	Lock         string         `json:"lock"`
	PID          int            `json:"pid"`
	Version      string         `json:"version"`
	// Etcd is the shared view with [etcd]: the record, its holder, every
	// monitor's verdict; EtcdError says why it is missing.
	Etcd      *etcd.Status `json:"etcd,omitempty"`
	EtcdError string       `json:"etcd_error,omitempty"`
	// Reload is the last reload (SIGHUP): when, and why it changed
	// nothing if it failed. Absent before the first.
	Reload *reloadStatus `json:"reload,omitempty"`
	// Readiness is ready, not-ready or unknown (no run finished yet),
	// absent with readiness_interval = 0; it shadows Status.Readiness,
	// whose problems and time follow as their own fields.
	Readiness         string           `json:"readiness,omitempty"`
	ReadinessProblems []fstaid.Problem `json:"readiness_problems,omitempty"`
	ReadinessChecked  time.Time        `json:"readiness_checked,omitzero"`
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	st := a.monitor.Status()
	resp := statusResponse{Status: st, Armed: st.State == fstaid.StateArmed, Lock: a.lock, PID: os.Getpid(), Version: version(),
		Reload: a.reloads.lastReload()}
	resp.Readiness = readinessState(a.readinessOn(), st.Readiness)
	if r := st.Readiness; r != nil {
		resp.ReadinessProblems, resp.ReadinessChecked = r.Problems, r.Checked
	}
	if a.recent != nil {
		resp.Since, resp.RecentRounds = a.recent.snapshot()
	}
	if a.etcd != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		es, err := a.etcd.Status(ctx)
		cancel()
		if err != nil {
			resp.EtcdError = err.Error()
		} else {
			resp.Etcd = es
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// drainingListener lets the daemon answer the connections already queued
// on a socket before it exits: once drain is called, Accept returns what
// is queued and then net.ErrClosed after a short quiet period, so that
// http.Server.Serve returns. Without it, systemd would see the queued
// connections after the exit and start the service again, in a loop.
type drainingListener struct {
	net.Listener
	mu       sync.Mutex
	draining bool
}

// drainQuiet is how long an empty queue must stay empty.
const drainQuiet = 100 * time.Millisecond

type deadliner interface{ SetDeadline(time.Time) error }

func (l *drainingListener) drain() {
	l.mu.Lock()
	l.draining = true
	l.mu.Unlock()
	if d, ok := l.Listener.(deadliner); ok {
		d.SetDeadline(time.Now()) // wake a blocked Accept
	}
}

func (l *drainingListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		draining := l.draining
		l.mu.Unlock()
		d, canDeadline := l.Listener.(deadliner)
		if draining && canDeadline {
			d.SetDeadline(time.Now().Add(drainQuiet))
		}
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if draining {
				return nil, net.ErrClosed
			}
			continue // woken by drain(); look again
		}
		return nil, err
	}
}

// serveDrain answers every connection queued on ls with h, then returns.
// For exits that must not re-trigger socket activation.
func serveDrain(ls []net.Listener, h http.Handler, logger *slog.Logger) {
	var wg sync.WaitGroup
	for _, l := range ls {
		dl := &drainingListener{Listener: l}
		dl.drain()
		srv := newHTTPServer(h, logger)
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Serve(dl)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

// configErrorHandler answers every request while fstaidd exits on a bad
// configuration.
func configErrorHandler(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"message": fmt.Sprintf("fstaidd is not running: configuration error (see journalctl -u fstaidd): %v", err),
		})
	})
}
