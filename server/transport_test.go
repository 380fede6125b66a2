package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/server"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := writeSelfSigned(t, certFile, keyFile, 1)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with
// serial, and its key, to certFile and keyFile, and returns the
// certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "gitstate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// servedSerial opens a new TLS connection to addr and returns the serial
// of the certificate the server presents.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the serial is checked, not trust
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSCertificateReload: replaced certificate files are served to new
// connections without a restart; files that do not load leave the
// previous certificate in service, with one warning.
func TestTLSCertificateReload(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	ts := startServer(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	if got := servedSerial(t, ts.Addr()); got != 1 {
		t.Fatalf("serial %d at start, want 1", got)
	}
	const warning = "TLS certificate files changed but do not load"

	// A broken certificate (a renewal half written, a wrong file).
	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got := servedSerial(t, ts.Addr()); got != 1 {
			t.Fatalf("serial %d with broken files, want the previous 1", got)
		}
	}
	if n := strings.Count(ts.logs.String(), warning); n != 1 {
		t.Errorf("%d warnings about the broken files, want 1:\n%s", n, ts.logs.String())
	}

	// The renewal lands.
	writeSelfSigned(t, certFile, keyFile, 2)
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, ts.Addr()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate is not served to new connections")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(ts.logs.String(), "TLS certificate reloaded") {
		t.Errorf("no log of the reload:\n%s", ts.logs.String())
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ts := startServer(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	if !strings.HasPrefix(ts.URL(), "https://") {
		t.Fatalf("URL %s with TLS", ts.URL())
	}
	ts.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	resp, _ := ts.do(t, http.MethodGet, "/healthz", "", nil)
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("healthz over TLS: %+v", resp.TLS)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2 over TLS", resp.Proto)
	}
	ts.put(t, ts.admin, "k", "v")

	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(ts.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}
	// Plain HTTP on the TLS port is not served.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + strings.TrimPrefix(ts.URL(), "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}

// TestPlainHTTPOnlyOnLoopback: the server refuses plain HTTP on an address
// that is not loopback (before binding it) unless told --insecure, and
// refuses half a TLS configuration.
func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Listen = listen
		_, err := server.Start(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "refusing to serve plain HTTP") || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("listen %s without TLS: %v", listen, err)
		}
		if _, serr := os.Stat(filepath.Join(cfg.DataDir, "admin.token")); serr == nil {
			t.Errorf("listen %s refused, yet a token was made", listen)
		}
	}
	for _, listen := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if listen == "[::1]:0" {
			if ln, err := net.Listen("tcp", listen); err != nil {
				continue // no IPv6 loopback here
			} else {
				ln.Close()
			}
		}
		startServer(t, func(c *server.Config) { c.Listen = listen })
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCert = "cert.pem"
	if _, err := server.Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("a certificate without a key: %v", err)
	}
}
