package etcd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"github.com/fstaid/fstaid/contrib/internal/config"
)

func TestConfigValidateNamesEveryKey(t *testing.T) {
	cfg := Config{
		Endpoints:     []string{"etcd1:2379", "ftp://x", "http://ok:2379"},
		Prefix:        "/",
		DialTimeout:   -time.Second,
		HolderTTL:     25 * time.Hour,
		VoteTTL:       -2 * time.Second,
		Password:      "secret",
		CertFile:      "/nonexistent/cert.pem",
		MonitorID:     "a/b",
		Quorum:        -1,
		OnUnavailable: "fail-open",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	msg := err.Error()
	for _, want := range []string{
		`[etcd] endpoints: endpoint "etcd1:2379"`,
		`[etcd] endpoints: endpoint "ftp://x"`,
		`[etcd] endpoints: endpoint "http://ok:2379" is plain http, but TLS files are set`,
		"[etcd] prefix:",
		"[etcd] dial_timeout:",
		"[etcd] holder_ttl: must be between 0 (default) and 86400 seconds, got 90000",
		"[etcd] verdict_ttl:",
		"[etcd] password: set without username",
		"[etcd] key_file: required with cert_file",
		"[etcd] cert_file:",
		"[etcd] monitor_id:",
		"[etcd] quorum:",
		`[etcd] on_unavailable: must be "fail-closed" (default) or "local-lock", got "fail-open"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate error lacks %q:\n%s", want, msg)
		}
	}
	if err := (&Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "[etcd] endpoints: at least one") {
		t.Errorf("empty config: %v", err)
	}
	both := Config{Endpoints: []string{"http://e:2379"}, Prefix: "/p", Quorum: 2, OnUnavailable: OnUnavailableLocalLock}
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), `[etcd] on_unavailable: "local-lock" cannot work with quorum`) {
		t.Errorf("local-lock with quorum: %v", err)
	}
}

// decodeSection reads the [etcd] table of doc through the daemon's
// pipeline; err holds every problem.
func decodeSection(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	root, err := config.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DecodeSection(root.Table("etcd", true))
	root.Problems().Include("", cfg.Validate())
	return cfg, root.Problems().Err()
}

func TestDecodeSection(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not a cert"), 0o600)
	// Integers and fractions of seconds, and duration strings: one rule.
	cfg, err := decodeSection(t, `
[etcd]
endpoints = ["http://127.0.0.1:2379"]
prefix = "/fstaid/db1"
dial_timeout = 2
holder_ttl = "1m30s"
verdict_ttl = 1.5
quorum = 2
monitor_id = "mon-a"
`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DialTimeout != 2*time.Second || cfg.HolderTTL != 90*time.Second || cfg.VoteTTL != 1500*time.Millisecond ||
		cfg.Quorum != 2 || cfg.MonitorID != "mon-a" || cfg.Prefix != "/fstaid/db1" {
		t.Fatalf("DecodeSection = %+v", cfg)
	}

	_, err = decodeSection(t, "[etcd]\nendpoints = [\"http://a:2379\"]\nprefix = \"/p\"\nfail_open = true\nttl = 3\nquorum = \"2\"\nholder_ttl = \"2 days\"\n")
	for _, want := range []string{
		"[etcd] fail_open: unknown key",
		"[etcd] ttl: unknown key",
		"[etcd] quorum: must be a whole number, got a string",
		`[etcd] holder_ttl: must be a number of seconds or a duration such as "1m30s", got "2 days"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad keys: error lacks %q: %v", want, err)
		}
	}
	_, err = decodeSection(t, "[etcd]\nendpoints = [\"http://a:2379\"]\nprefx = \"/p\"\n")
	if err == nil || !strings.Contains(err.Error(), `[etcd] prefx: unknown key (did you mean "prefix"?)`) {
		t.Errorf("a typo: %v", err)
	}

	bad := &Config{Endpoints: []string{"https://127.0.0.1:2379"}, Prefix: "/p", CAFile: ca}
	if _, err := bad.ClientConfig(); err == nil || !strings.Contains(err.Error(), "[etcd] ca_file") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
}

// Open builds the client from the config; the Store it returns works and
// its Close closes the client.
func TestOpen(t *testing.T) {
	srv := startEtcd(t)
	cfg := &Config{Endpoints: endpoints(srv), Prefix: "/open/", DialTimeout: 2 * time.Second, MonitorID: "mon-a", HolderTTL: 3 * time.Second, VoteTTL: 4 * time.Second}
	s, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix() != "/open" || s.MonitorID() != "mon-a" || s.holderTTL != 3*time.Second || s.voteTTL != 4*time.Second || s.timeout != 2*time.Second {
		t.Fatalf("Open: prefix %q id %q ttls %v %v timeout %v", s.Prefix(), s.MonitorID(), s.holderTTL, s.voteTTL, s.timeout)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if err := s.Lock().Probe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock().Acquire(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Lock().String(), `"/open/record"`) || !strings.Contains(s.Lock().String(), srv.endpoint) {
		t.Errorf("Lock.String() = %q, want the key and the endpoints", s.Lock().String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := s.Lock().Load(lctx); err == nil {
		t.Error("Load after Close succeeded; the client should be closed")
	}

	if _, err := Open(&Config{}, nil); err == nil {
		t.Error("Open accepted an empty config")
	}
	if _, err := NewStore(nil, "", WithHolderTTL(0), WithMonitorID("")); err == nil ||
		!strings.Contains(err.Error(), "nil client") || !strings.Contains(err.Error(), "empty prefix") ||
		!strings.Contains(err.Error(), "holder TTL") || !strings.Contains(err.Error(), "monitor ID") {
		t.Errorf("NewStore with bad options: %v", err)
	}
	var ue *UnavailableError
	if !errors.As(error(&UnavailableError{Op: "x", Err: errors.New("y")}), &ue) || !errors.Is(ue, fstaid.ErrLockUnavailable) {
		t.Error("UnavailableError is not ErrLockUnavailable")
	}
}
