package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of Options.
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultMaxBodyBytes     = 64 << 10
	DefaultMaxBatchBytes    = 4 << 20
	DefaultMaxBatch         = 1000
	DefaultTimeout          = 2 * time.Second
	DefaultBatchSize        = 512
	DefaultIdempotencyCache = 1_000_000
)

// Options configure a Server. Zero values take the defaults noted on each field.
type Options struct {
	// Listen is the TCP address to serve on; ":0" picks a free port (see Server.Addr).
	// Default 127.0.0.1:8080.
	Listen string
	// TLSCert and TLSKey are PEM files of the server's certificate (chain) and private key.
	// Both set: the API speaks HTTPS only; both empty: plain HTTP.
	TLSCert, TLSKey string
	// Auth configures JWT bearer authentication; without keys, no authentication.
	Auth Auth
	// RateLimit is the sustained requests per second allowed to one client (the token's
	// subject, or the remote IP without authentication); 0 turns rate limiting off.
	RateLimit float64
	// Burst is how many requests a client may send at once above the sustained rate.
	// Default: RateLimit rounded up, at least 1.
	Burst int
	// MaxBodyBytes bounds the body of POST /v1/transactions. Default 64 KiB.
	MaxBodyBytes int64
	// MaxBatchBytes bounds the body of POST /v1/transactions/batch. Default 4 MiB.
	MaxBatchBytes int64
	// MaxBatch bounds the transactions of one batch request. Default 1000.
	MaxBatch int
	// Timeout is how long a request waits for its decision; past it the answer is 503 with
	// Retry-After: 1 (the transaction may still be decided: a retry with the same id gets
	// that decision). Default 2s.
	Timeout time.Duration
	// BatchSize is the most transactions one ReadBatch hands to the engine. Default 512.
	BatchSize int
	// IdempotencyCache is how many answered decisions are kept by transaction id, so that a
	// repeated id is answered without entering the engine. Default 1,000,000.
	IdempotencyCache int
	// Logger receives start, stop and failure messages; nil discards them. Tokens and
	// secrets are never logged.
	Logger *slog.Logger
	// FeatureNames are written with each decision (pipeline.AppendDecisionJSON); nil: no
	// features in answers. The engine must keep features (EngineConfig.KeepFeatures) for
	// them to appear.
	FeatureNames []string
}

// Auth configures JWT bearer authentication. A request must carry
// "Authorization: Bearer <JWT>" signed with HS256 by HS256Secret or with RS256 by a key of
// JWKSFile. With neither set, requests are not authenticated.
type Auth struct {
	// HS256Secret is the shared secret of HS256 tokens; at least 32 bytes.
	HS256Secret []byte
	// JWKSFile is a JSON Web Key Set file ({"keys":[{"kty":"RSA","kid":…,"n":…,"e":…}]})
	// of the RS256 public keys tokens may be signed with, each found by the token's kid.
	JWKSFile string
	// Audience, when set, must be the token's aud (a string, or one of an array).
	Audience string
	// Issuer, when set, must be the token's iss.
	Issuer string
	// Leeway is the clock skew allowed on exp and nbf. Default 0.
	Leeway time.Duration
}

// String describes the auth settings without the secret, so that printing Options never
// shows it.
func (a Auth) String() string {
	secret := "none"
	if len(a.HS256Secret) > 0 {
		secret = "set (redacted)"
	}
	return fmt.Sprintf("{HS256Secret:%s JWKSFile:%q Audience:%q Issuer:%q Leeway:%s}", secret, a.JWKSFile, a.Audience, a.Issuer, a.Leeway)
}

// LogValue is String for log/slog.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// enabled reports whether requests must be authenticated.
func (a *Auth) enabled() bool { return len(a.HS256Secret) > 0 || a.JWKSFile != "" }

func (o Options) withDefaults() (Options, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return o, errors.New("http api: set both tls_cert and tls_key for HTTPS, or neither for plain HTTP")
	}
	if o.RateLimit < 0 || math.IsNaN(o.RateLimit) || math.IsInf(o.RateLimit, 0) {
		return o, fmt.Errorf("http api: rate limit %v must be a number of requests per second >= 0 (0 turns it off)", o.RateLimit)
	}
	if o.Burst < 0 {
		return o, fmt.Errorf("http api: burst %d must be >= 0", o.Burst)
	}
	if o.RateLimit > 0 && o.Burst == 0 {
		o.Burst = max(1, int(math.Ceil(o.RateLimit)))
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.IdempotencyCache <= 0 {
		o.IdempotencyCache = DefaultIdempotencyCache
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Auth.HS256Secret) > 0 && len(o.Auth.HS256Secret) < 32 {
		return o, fmt.Errorf("http api: the HS256 secret is %d bytes; use at least 32 random bytes", len(o.Auth.HS256Secret))
	}
	if o.Auth.Leeway < 0 {
		return o, fmt.Errorf("http api: auth leeway %s must be >= 0", o.Auth.Leeway)
	}
	return o, nil
}
