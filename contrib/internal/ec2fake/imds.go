package ec2fake

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// IMDS is a local instance metadata service speaking IMDSv2: PUT
// /latest/api/token (with X-aws-ec2-metadata-token-ttl-seconds) returns a
// session token; GETs under /latest/meta-data/ need it in
// X-aws-ec2-metadata-token and answer 401 without a valid one.
type IMDS struct {
	// URL is the endpoint, for imds.Options.Endpoint.
	URL string
	srv *httptest.Server

	mu         sync.Mutex
	instanceID string
	tokens     map[string]time.Time
	latency    time.Duration
	puts, gets int
	down       bool
}

// NewIMDS starts an IMDS on 127.0.0.1 answering instanceID.
func NewIMDS(instanceID string) *IMDS {
	m := &IMDS{instanceID: instanceID, tokens: map[string]time.Time{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serveHTTP))
	m.URL = m.srv.URL
	return m
}

// NewIMDSOn starts an IMDS answering instanceID on l (for instance
// 169.254.169.254:80 in a test's own network namespace); Close closes l.
func NewIMDSOn(l net.Listener, instanceID string) *IMDS {
	m := &IMDS{instanceID: instanceID, tokens: map[string]time.Time{}}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(m.serveHTTP))
	m.srv.Listener.Close()
	m.srv.Listener = l
	m.srv.Start()
	m.URL = m.srv.URL
	return m
}

// Close shuts it down.
func (m *IMDS) Close() { m.srv.Close() }

// SetLatency delays every answer.
func (m *IMDS) SetLatency(d time.Duration) { m.mu.Lock(); m.latency = d; m.mu.Unlock() }

// SetDown makes every request answer 503.
func (m *IMDS) SetDown(down bool) { m.mu.Lock(); m.down = down; m.mu.Unlock() }

// ExpireTokens invalidates every token handed out so far.
func (m *IMDS) ExpireTokens() { m.mu.Lock(); clear(m.tokens); m.mu.Unlock() }

// Counts returns how many token PUTs and metadata GETs were answered.
func (m *IMDS) Counts() (puts, gets int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts, m.gets
}

func (m *IMDS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	delay, down := m.latency, m.down
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r.URL.Path == "/latest/api/token":
		if r.Method != http.MethodPut {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b := make([]byte, 16)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		m.tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
		m.puts++
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		w.Write([]byte(tok))
	case r.URL.Path == "/latest/meta-data/instance-id":
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		exp, ok := m.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
		if !ok || time.Now().After(exp) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		m.gets++
		w.Write([]byte(m.instanceID))
	default:
		http.NotFound(w, r)
	}
}
