package httpapi

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// minRSABits is the smallest RSA modulus accepted in a JWKS file.
const minRSABits = 2048

// maxTokenBytes bounds a bearer token, so a huge header costs nothing to refuse.
const maxTokenBytes = 8 << 10

// authError is why a token was refused; its text goes to the client in WWW-Authenticate and
// never contains the token.
type authError string

func (e authError) Error() string { return string(e) }

// verifier checks JWT bearer tokens (RFC 7519) signed with HS256 or RS256.
type verifier struct {
	secret   []byte
	jwksFile string
	keys     atomic.Pointer[map[string]*rsa.PublicKey] // by kid; nil without a JWKS file
	audience string
	issuer   string
	leeway   time.Duration
	now      func() time.Time
}

func newVerifier(a Auth) (*verifier, error) {
	v := &verifier{
		secret: a.HS256Secret, jwksFile: a.JWKSFile,
		audience: a.Audience, issuer: a.Issuer, leeway: a.Leeway, now: time.Now,
	}
	if a.JWKSFile != "" {
		if err := v.reload(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// reload reads the JWKS file again; on error the keys in use stay.
func (v *verifier) reload() error {
	data, err := os.ReadFile(v.jwksFile)
	if err != nil {
		return fmt.Errorf("http api: JWKS file: %w", err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return fmt.Errorf("http api: JWKS file %s: %w", v.jwksFile, err)
	}
	v.keys.Store(&keys)
	return nil
}

// parseJWKS reads the RSA signing keys of a JSON Web Key Set (RFC 7517). Keys of other
// types, or meant for encryption or another algorithm, are skipped; at least one usable
// key must remain.
func parseJWKS(data []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey)
	for i, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("key %d has no kid: give every key a kid, and tokens the kid of their key", i)
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("kid %q appears twice", k.Kid)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("key %q: n and e must be base64url big-endian integers", k.Kid)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		for _, b := range e {
			pub.E = pub.E<<8 | int(b)
		}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("key %q has %d bits; use RSA keys of at least %d bits", k.Kid, pub.N.BitLen(), minRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("key %q: exponent %d is not a valid RSA public exponent", k.Kid, pub.E)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no RSA signing key (kty RSA, use sig, alg RS256) in it")
	}
	return keys, nil
}

// jwtHeader and jwtClaims are the parts of a token that are checked.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type jwtClaims struct {
	Sub string          `json:"sub"`
	Iss string          `json:"iss"`
	Aud json.RawMessage `json:"aud"`
	Exp json.Number     `json:"exp"`
	Nbf json.Number     `json:"nbf"`
}

// verify checks the token of an Authorization header value and returns its subject.
func (v *verifier) verify(authorization string) (string, error) {
	scheme, token, ok := strings.Cut(authorization, " ")
	if authorization == "" {
		return "", authError("no bearer token: send Authorization: Bearer <JWT>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", authError("the Authorization header is not a Bearer token")
	}
	token = strings.TrimSpace(token)
	if len(token) > maxTokenBytes {
		return "", authError("token too long")
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return "", authError("malformed token: a JWT has three dot-separated parts")
	}
	var hdr jwtHeader
	if err := decodeSegment(h64, &hdr); err != nil {
		return "", authError("malformed token header")
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return "", authError("malformed token signature")
	}
	signed := token[:len(h64)+1+len(c64)]
	// Only the configured algorithms are accepted: "none" never, and HS256 not when only
	// RSA keys are configured, or an HMAC made with a public key would pass.
	switch hdr.Alg {
	case "HS256":
		if len(v.secret) == 0 {
			return "", authError("alg HS256 is not accepted here")
		}
		mac := hmac.New(sha256.New, v.secret)
		mac.Write([]byte(signed))
		if !hmac.Equal(mac.Sum(nil), sig) {
			return "", authError("bad signature")
		}
	case "RS256":
		keys := v.keys.Load()
		if keys == nil {
			return "", authError("alg RS256 is not accepted here")
		}
		key, ok := (*keys)[hdr.Kid]
		if !ok {
			if hdr.Kid == "" {
				return "", authError("token has no kid")
			}
			return "", authError("unknown kid")
		}
		sum := sha256.Sum256([]byte(signed))
		if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
			return "", authError("bad signature")
		}
	default:
		return "", authError(fmt.Sprintf("alg %.20q is not accepted here", hdr.Alg))
	}
	var c jwtClaims
	if err := decodeSegment(c64, &c); err != nil {
		return "", authError("malformed token claims")
	}
	now := v.now()
	if c.Exp == "" {
		return "", authError("token has no exp claim")
	}
	exp, err := numericDate(c.Exp)
	if err != nil {
		return "", authError("exp is not a number of seconds")
	}
	if !now.Before(exp.Add(v.leeway)) {
		return "", authError("token expired")
	}
	if c.Nbf != "" {
		nbf, err := numericDate(c.Nbf)
		if err != nil {
			return "", authError("nbf is not a number of seconds")
		}
		if now.Add(v.leeway).Before(nbf) {
			return "", authError("token not valid yet")
		}
	}
	if v.issuer != "" && c.Iss != v.issuer {
		return "", authError("wrong issuer")
	}
	if v.audience != "" && !hasAudience(c.Aud, v.audience) {
		return "", authError("wrong audience")
	}
	return c.Sub, nil
}

// decodeSegment decodes one base64url part of a token into a JSON object.
func decodeSegment(seg string, into any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(into); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// numericDate converts a JWT NumericDate (seconds since the epoch, maybe fractional).
func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
		return time.Time{}, errors.New("bad date")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// hasAudience reports whether aud (a string or an array of strings) names want.
func hasAudience(aud json.RawMessage, want string) bool {
	if len(aud) == 0 {
		return false
	}
	var one string
	if json.Unmarshal(aud, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(aud, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}
