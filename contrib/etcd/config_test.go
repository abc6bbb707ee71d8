package etcd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fstaid/fstaid"
)

func TestConfigValidateNamesEveryKey(t *testing.T) {
	cfg := Config{
		Endpoints:     []string{"etcd1:2379", "ftp://x", "http://ok:2379"},
		Prefix:        "/",
		DialTimeout:   -1,
		HolderTTL:     1e9,
		VerdictTTL:    -2,
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
		"[etcd] holder_ttl:",
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

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not a cert"), 0o600)
	var doc map[string]any
	// Integers where seconds are floats, as operators write them.
	if _, err := toml.Decode(`
[etcd]
endpoints = ["http://127.0.0.1:2379"]
prefix = "/fstaid/db1"
dial_timeout = 2
verdict_ttl = 1.5
quorum = 2
monitor_id = "mon-a"
`, &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(doc["etcd"].(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DialTimeout != 2 || cfg.VerdictTTL != 1.5 || cfg.Quorum != 2 || cfg.MonitorID != "mon-a" || cfg.Prefix != "/fstaid/db1" {
		t.Fatalf("ParseConfig = %+v", cfg)
	}

	_, err = ParseConfig(map[string]any{"endpoints": []any{"http://a:2379"}, "prefix": "/p", "fail_open": true, "ttl": 3})
	if err == nil || !strings.Contains(err.Error(), "[etcd] fail_open: unknown key") || !strings.Contains(err.Error(), "[etcd] ttl: unknown key") {
		t.Fatalf("unknown keys: %v", err)
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
	cfg := &Config{Endpoints: endpoints(srv), Prefix: "/open/", DialTimeout: 2, MonitorID: "mon-a", HolderTTL: 3, VerdictTTL: 4}
	s, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix() != "/open" || s.MonitorID() != "mon-a" || s.holderTTL != 3*time.Second || s.verdictTTL != 4*time.Second || s.timeout != 2*time.Second {
		t.Fatalf("Open: prefix %q id %q ttls %v %v timeout %v", s.Prefix(), s.MonitorID(), s.holderTTL, s.verdictTTL, s.timeout)
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
