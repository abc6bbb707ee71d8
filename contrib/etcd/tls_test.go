package etcd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fstaid/fstaid"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// writeCert writes a certificate (signed by parent, or self-signed) and
// its key as PEM files in dir, and returns their paths.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath, cert, key
}

// The TLS keys of the config (cert_file, key_file, ca_file) reach an etcd
// that requires client certificates; without a client certificate the
// lock is unavailable, not silently open.
func TestOpenMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	caPath, _, ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	srvCert, srvKey, _, _ := writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "etcd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	cliCert, cliKey, _, _ := writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "fstaid"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)

	srv := startClusterTLS(t, 1, &transport.TLSInfo{CertFile: srvCert, KeyFile: srvKey, TrustedCAFile: caPath, ClientCertAuth: true})[0]
	ctx := ctxTimeout(t, 20*time.Second)

	cfg := &Config{Endpoints: endpoints(srv), Prefix: "/tls", CertFile: cliCert, KeyFile: cliKey, CAFile: caPath, DialTimeout: 2 * time.Second}
	s, err := Open(cfg, nil, WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Lock().Probe(ctx); err != nil {
		t.Fatalf("Probe over mutual TLS: %v", err)
	}
	if err := s.Lock().Acquire(ctx, testRecord("tls")); err != nil {
		t.Fatalf("Acquire over mutual TLS: %v", err)
	}

	noCert := &Config{Endpoints: endpoints(srv), Prefix: "/tls", CAFile: caPath, DialTimeout: time.Second}
	s2, err := Open(noCert, nil, WithLogger(nil), WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Lock().Load(t.Context()); !errors.Is(err, fstaid.ErrLockUnavailable) {
		t.Fatalf("Load without a client certificate = %v, want ErrLockUnavailable", err)
	}
}
