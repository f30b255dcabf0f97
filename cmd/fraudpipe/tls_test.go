package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                   string
	caPool                *x509.CertPool
	serverCert, serverKey string // file names in dir
	caFile                string
	client                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), caPool: x509.NewCertPool()}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fraudpipe test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.caPool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	der, key := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	p.serverCert = p.write(t, "server.pem", "CERTIFICATE", der)
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	p.serverKey = p.write(t, "server-key.pem", "PRIVATE KEY", kb)
	der, key = issue(3, "prometheus", x509.ExtKeyUsageClientAuth)
	p.client = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// resolve finds the PKI's files as a config in its folder would.
func (p *testPKI) resolve(name string) string { return filepath.Join(p.dir, name) }

// get fetches url with client and returns the status and body, or the error.
func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestAdminTLS serves /metrics over HTTPS: a TLS client that trusts the CA scrapes it,
// plain HTTP to the same port gets no metrics.
func TestAdminTLS(t *testing.T) {
	pki := newTestPKI(t)
	reg := newRegistry()
	adm, err := startAdminConfig(config.Admin{Listen: "127.0.0.1:0", TLS: config.TLS{CertFile: pki.serverCert, KeyFile: pki.serverKey}},
		pki.resolve, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.stop()
	addr := adm.ln.Addr().String()
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.caPool}}}
	code, body, err := get(tlsClient, "https://"+addr+"/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("GET https /metrics = %d %v %.200s", code, err, body)
	}
	if code, _, err := get(tlsClient, "https://"+addr+"/healthz"); err != nil || code != 200 {
		t.Errorf("GET https /healthz = %d %v", code, err)
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	code, body, err = get(plain, "http://"+addr+"/metrics")
	if err == nil && (code == 200 || strings.Contains(body, "go_goroutines")) {
		t.Errorf("plain HTTP to the TLS port was served: %d %.200s", code, body)
	}
	untrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	if _, _, err := get(untrusting, "https://"+addr+"/metrics"); err == nil {
		t.Error("a client that does not trust the CA accepted the certificate")
	}
}

// TestAdminMutualTLS asks clients for a certificate: one without is refused in the
// handshake, one with a certificate from the CA scrapes /metrics.
func TestAdminMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	adm, err := startAdminConfig(config.Admin{Listen: "127.0.0.1:0", TLS: config.TLS{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile}},
		pki.resolve, newRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.stop()
	url := "https://" + adm.ln.Addr().String() + "/metrics"
	anonymous := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.caPool}}}
	if code, _, err := get(anonymous, url); err == nil {
		t.Errorf("a client without a certificate got %d", code)
	}
	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.client}}}}
	if code, body, err := get(withCert, url); err != nil || code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("a client with a certificate: %d %v %.200s", code, err, body)
	}
}

func TestAdminTLSErrors(t *testing.T) {
	pki := newTestPKI(t)
	for _, tt := range []struct {
		tls  config.TLS
		want string
	}{
		{config.TLS{CertFile: pki.serverCert, KeyFile: pki.caFile}, "admin.tls: certificate server.pem and key ca.pem:"},
		{config.TLS{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.serverKey}, "admin.tls.client_ca_file: server-key.pem holds no PEM certificate"},
	} {
		_, err := startAdminConfig(config.Admin{Listen: "127.0.0.1:0", TLS: tt.tls}, pki.resolve, newRegistry(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %s", tt.tls, err, tt.want)
		}
	}
}
