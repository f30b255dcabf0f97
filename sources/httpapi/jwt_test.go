package httpapi

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var b64 = base64.RawURLEncoding

func segment(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// signHS256 makes an HS256 token of claims with key.
func signHS256(t testing.TB, hdr, claims map[string]any, key []byte) string {
	in := segment(t, hdr) + "." + segment(t, claims)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return in + "." + b64.EncodeToString(m.Sum(nil))
}

func signRS256(t testing.TB, hdr, claims map[string]any, key *rsa.PrivateKey) string {
	in := segment(t, hdr) + "." + segment(t, claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// writeJWKS writes a JWKS file holding key's public half under kid.
func writeJWKS(t testing.TB, key *rsa.PrivateKey, kid string) string {
	pub := key.PublicKey
	e := big.NewInt(int64(pub.E)).Bytes()
	set := map[string]any{"keys": []map[string]any{
		{"kty": "EC", "kid": "ignored", "crv": "P-256", "x": "AA", "y": "AA"},
		{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64.EncodeToString(pub.N.Bytes()), "e": b64.EncodeToString(e)},
	}}
	b, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJWT(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-secret")
	key := testRSAKey(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := writeJWKS(t, key, "k1")
	now := time.Now().Unix()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "payments-eu", "iss": "https://auth.example", "aud": "fraudpipe", "exp": now + 300, "nbf": now - 10}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hs := map[string]any{"alg": "HS256", "typ": "JWT"}
	rs := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"}
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	none := segment(t, map[string]any{"alg": "none"}) + "." + segment(t, claims(nil)) + "."

	auth := Auth{Audience: "fraudpipe", Issuer: "https://auth.example", Leeway: 5 * time.Second}
	hsAuth, rsAuth := auth, auth
	hsAuth.HS256Secret = secret
	rsAuth.JWKSFile = jwks
	hsServer := newHarness(t, Options{Auth: hsAuth})
	rsServer := newHarness(t, Options{Auth: rsAuth})

	cases := []struct {
		name   string
		h      *harness
		header string // the Authorization header
		ok     bool
		why    string // in error_description
	}{
		{"HS256 valid", hsServer, "Bearer " + signHS256(t, hs, claims(nil), secret), true, ""},
		{"HS256 lower-case scheme", hsServer, "bearer " + signHS256(t, hs, claims(nil), secret), true, ""},
		{"HS256 aud array", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["aud"] = []string{"other", "fraudpipe"} }), secret), true, ""},
		{"HS256 within leeway", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["exp"] = now - 2 }), secret), true, ""},
		{"HS256 bad signature", hsServer, "Bearer " + signHS256(t, hs, claims(nil), []byte("another secret of enough length....")), false, "bad signature"},
		{"HS256 tampered claims", hsServer, "Bearer " + tamper(signHS256(t, hs, claims(nil), secret), segment(t, claims(func(c map[string]any) { c["sub"] = "admin" }))), false, "bad signature"},
		{"RS256 on an HS256-only server", hsServer, "Bearer " + signRS256(t, rs, claims(nil), key), false, "alg"},
		{"missing", hsServer, "", false, "no bearer token"},
		{"basic auth", hsServer, "Basic dXNlcjpwYXNz", false, "not a Bearer"},
		{"alg none", hsServer, "Bearer " + none, false, "alg"},
		{"expired", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["exp"] = now - 60 }), secret), false, "expired"},
		{"no exp", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { delete(c, "exp") }), secret), false, "exp"},
		{"not yet valid", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["nbf"] = now + 60 }), secret), false, "not valid yet"},
		{"wrong audience", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["aud"] = "billing" }), secret), false, "audience"},
		{"wrong audience array", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["aud"] = []string{"a", "b"} }), secret), false, "audience"},
		{"no audience", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { delete(c, "aud") }), secret), false, "audience"},
		{"wrong issuer", hsServer, "Bearer " + signHS256(t, hs, claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), secret), false, "issuer"},
		{"garbage", hsServer, "Bearer not.a.jwt", false, "malformed"},
		{"two parts", hsServer, "Bearer abc.def", false, "malformed"},
		{"four parts", hsServer, "Bearer a.b.c.d", false, "malformed"},

		{"RS256 valid", rsServer, "Bearer " + signRS256(t, rs, claims(nil), key), true, ""},
		{"RS256 signed by another key", rsServer, "Bearer " + signRS256(t, rs, claims(nil), other), false, "bad signature"},
		{"RS256 unknown kid", rsServer, "Bearer " + signRS256(t, map[string]any{"alg": "RS256", "kid": "k2"}, claims(nil), key), false, "unknown kid"},
		{"RS256 no kid", rsServer, "Bearer " + signRS256(t, map[string]any{"alg": "RS256"}, claims(nil), key), false, "kid"},
		{"RS256 expired", rsServer, "Bearer " + signRS256(t, rs, claims(func(c map[string]any) { c["exp"] = now - 60 }), key), false, "expired"},
		{"key confusion: HS256 with the public key PEM", rsServer, "Bearer " + signHS256(t, map[string]any{"alg": "HS256", "kid": "k1"}, claims(nil), pubPEM), false, "alg"},
		{"key confusion: HS256 with the public key DER", rsServer, "Bearer " + signHS256(t, map[string]any{"alg": "HS256", "kid": "k1"}, claims(nil), pubDER), false, "alg"},
		{"alg none on the RSA server", rsServer, "Bearer " + none, false, "alg"},
		{"PS256", rsServer, "Bearer " + signRS256(t, map[string]any{"alg": "PS256", "kid": "k1"}, claims(nil), key), false, "alg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.header != "" {
				hdr = []string{"Authorization", c.header}
			}
			st, h, body := c.h.get(PathTransactions+"/nothing", hdr...)
			if c.ok {
				if st != http.StatusNotFound { // authenticated, then not found
					t.Fatalf("refused: %d %s %s", st, h.Get("WWW-Authenticate"), body)
				}
				return
			}
			if st != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", st, body)
			}
			wa := h.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, `error="invalid_token"`) || !strings.Contains(wa, "error_description=") {
				t.Errorf("WWW-Authenticate %q", wa)
			}
			if !strings.Contains(wa, c.why) || !strings.Contains(string(body), `"reason":"unauthorized"`) {
				t.Errorf("WWW-Authenticate %q, body %s: want %q", wa, body, c.why)
			}
			if tok := strings.TrimPrefix(c.header, "Bearer "); len(tok) > 20 && (strings.Contains(wa, tok) || strings.Contains(string(body), tok)) {
				t.Error("the answer echoes the token")
			}
		})
	}
}

// tamper replaces a token's claims, keeping its signature.
func tamper(token, claims string) string {
	p := strings.Split(token, ".")
	return p[0] + "." + claims + "." + p[2]
}

func TestJWTSubjectIsTheRateLimitClient(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, Options{Auth: Auth{HS256Secret: secret}, RateLimit: 0.01, Burst: 1})
	exp := time.Now().Add(time.Hour).Unix()
	tokA := signHS256(t, map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "exp": exp}, secret)
	tokB := signHS256(t, map[string]any{"alg": "HS256"}, map[string]any{"sub": "b", "exp": exp}, secret)
	if st, _, _ := h.get(PathTransactions+"/x", "Authorization", "Bearer "+tokA); st != http.StatusNotFound {
		t.Fatalf("a: %d", st)
	}
	if st, _, _ := h.get(PathTransactions+"/x", "Authorization", "Bearer "+tokA); st != http.StatusTooManyRequests {
		t.Fatalf("a again: %d, want 429", st)
	}
	if st, _, _ := h.get(PathTransactions+"/x", "Authorization", "Bearer "+tokB); st != http.StatusNotFound {
		t.Fatalf("b from the same address: %d, want its own bucket", st)
	}
}

func TestJWKSRefused(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":   `{"keys":`,
		"no rsa key": `{"keys":[{"kty":"EC","kid":"e"}]}`,
		"no kid":     `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"small key":  `{"keys":[{"kty":"RSA","kid":"s","n":"` + b64.EncodeToString(small.N.Bytes()) + `","e":"AQAB"}]}`,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := New(Options{Auth: Auth{JWKSFile: path}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReloadJWKS(t *testing.T) {
	key := testRSAKey(t)
	path := writeJWKS(t, key, "old")
	h := newHarness(t, Options{Auth: Auth{JWKSFile: path}})
	tok := signRS256(t, map[string]any{"alg": "RS256", "kid": "new"}, map[string]any{"exp": time.Now().Add(time.Hour).Unix()}, key)
	if st, _, _ := h.get(PathTransactions+"/x", "Authorization", "Bearer "+tok); st != http.StatusUnauthorized {
		t.Fatalf("kid new before reload: %d", st)
	}
	data, _ := os.ReadFile(writeJWKS(t, key, "new"))
	os.WriteFile(path, data, 0o600)
	if err := h.srv.ReloadJWKS(); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := h.get(PathTransactions+"/x", "Authorization", "Bearer "+tok); st != http.StatusNotFound {
		t.Fatalf("kid new after reload: %d", st)
	}
}

func TestTLS(t *testing.T) {
	key := testRSAKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)

	h := newHarness(t, Options{TLSCert: certPath, TLSKey: keyPath})
	h.startEngine()
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("URL %s", h.url)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("POST", h.url+PathTransactions, strings.NewReader(string(tx("tls-1", "card-1", "1.00"))))
	req.Header.Set("Content-Type", ctJSON)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to the TLS port is not served.
	plain := strings.Replace(h.url, "https://", "http://", 1)
	if resp, err := http.Get(plain + PathTransactions + "/x"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}

func TestAuthNeverPrintsTheSecret(t *testing.T) {
	o := Options{Auth: Auth{HS256Secret: []byte("super-secret-value-0123456789abcdef")}}
	for _, s := range []string{fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprint(o.Auth)} {
		if strings.Contains(s, "super-secret") {
			t.Errorf("printed the secret: %s", s)
		}
	}
}
