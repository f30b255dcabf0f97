package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// serverTLS returns the TLS configuration of a listener from t, its files resolved by
// resolve: the certificate and key, and, with a client CA file, mutual TLS that refuses in
// the handshake every client without a certificate signed by one of its CAs. what names
// the config block in errors ("admin.tls"). It returns nil when t asks for no TLS.
func serverTLS(what string, t config.TLS, resolve func(string) string) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(resolve(t.CertFile), resolve(t.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("%s: certificate %s and key %s: %w", what, t.CertFile, t.KeyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(resolve(t.ClientCAFile))
		if err != nil {
			return nil, fmt.Errorf("%s.client_ca_file: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.client_ca_file: %s holds no PEM certificate", what, t.ClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
