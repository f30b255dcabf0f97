package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// TLS is a listener's certificate and, for mutual TLS, the CAs its clients' certificates
// must chain to (admin.tls).
type TLS struct {
	CertFile     string `yaml:"cert_file" doc:"PEM certificate (chain) file; with key_file the listener speaks HTTPS only. Relative to this config file."`
	KeyFile      string `yaml:"key_file" doc:"PEM private key file of cert_file."`
	ClientCAFile string `yaml:"client_ca_file" doc:"PEM file of the CA certificates that clients' certificates must be signed by (mutual TLS): a client without one is refused in the handshake. Empty: no client certificates asked for."`
}

// Enabled reports whether t asks for TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// SSE values: the server-side encryption fraudpipe asks S3 for on the objects it writes.
const (
	SSENone = ""        // the bucket's default encryption
	SSES3   = "AES256"  // SSE-S3, keys managed by S3
	SSEKMS  = "aws:kms" // SSE-KMS, with S3.SSEKMSKeyID or the AWS-managed key aws/s3
)

// OpenSearch auth values (output.opensearch[].auth).
const (
	OpenSearchAuthBasic = "basic"
	OpenSearchAuthSigV4 = "sigv4"
	OpenSearchAuthNone  = "none"
)

// AuthMode returns the authentication o uses: its auth field, or, when that is empty,
// basic with a username or password and none without.
func (o OpenSearchOutput) AuthMode() string {
	switch {
	case o.Auth != "":
		return o.Auth
	case o.Username != "" || o.Password != "":
		return OpenSearchAuthBasic
	}
	return OpenSearchAuthNone
}

// security adds the issues of the TLS, encryption and authentication fields.
func (v *validator) security(c *Config) {
	if c.Admin.Listen != "" || c.Admin.TLS != (TLS{}) {
		v.tls("admin.tls", c.Admin.TLS)
	}
	if h := c.Source.HTTP; c.Source.Type == "http" && h.TLSCert != "" && h.TLSKey != "" {
		v.readable("source.http.tls_cert", h.TLSCert)
		v.readable("source.http.tls_key", h.TLSKey)
	}
	v.sse("checkpoint.s3", c.Checkpoint.S3)
	v.sse("output.parquet.s3", c.Output.Parquet.S3)
	if s := c.Source.S3.S3; s.SSE != "" || s.SSEKMSKeyID != "" {
		v.add("source.s3.s3.sse", "fraudpipe only reads the batch files, so server-side encryption settings have no effect here: remove sse and sse_kms_key_id (S3 decrypts SSE-S3 and SSE-KMS objects for any reader allowed to use the key)")
	}
	for i, o := range c.Output.OpenSearch {
		v.openSearchAuth(fmt.Sprintf("output.opensearch[%d]", i), o)
	}
	if c.Ledger.Driver == "postgres" && c.Ledger.URL != "" {
		v.postgresURL("ledger.url", c.Ledger.URL)
	}
}

// postgresURL checks that a postgres:// URL parses, without ever quoting it: it usually
// holds a password, and a URL that does not parse is one that no code can redact.
// Keyword/value connection strings (host=db user=fraudpipe ...) are left to the driver.
func (v *validator) postgresURL(path, s string) {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return
	}
	if scheme != "postgres" && scheme != "postgresql" {
		v.add(path, "must be a postgres:// or postgresql:// URL, not %s://", scheme)
		return
	}
	_, err := url.Parse(s)
	var ee url.EscapeError
	var he url.InvalidHostError
	switch {
	case errors.As(err, &ee):
		v.add(path, "has a %% that does not start a %%XX escape (in the user, password, host or path): write %%25 for a literal %%, and percent-encode @, :, / and # in a password")
	case errors.As(err, &he):
		v.add(path, "has a character not allowed in a host name: percent-encode @, :, / and # in the user and password")
	case err != nil:
		v.add(path, "is not a valid URL (such as postgres://fraudpipe:${PGPASSWORD}@db:5432/ledger): check the port is a number and the password's @, :, / and # are percent-encoded")
	}
}

// tls checks a listener's TLS block: certificate and key together, every file readable.
func (v *validator) tls(path string, t TLS) {
	switch {
	case t.CertFile == "" && t.KeyFile == "" && t.ClientCAFile == "":
		return
	case (t.CertFile == "") != (t.KeyFile == ""):
		v.add(path+".cert_file", "cert_file and key_file go together: set both for HTTPS, or neither")
		return
	case t.CertFile == "":
		v.add(path+".client_ca_file", "needs cert_file and key_file: client certificates are asked for only over HTTPS")
		return
	}
	v.readable(path+".cert_file", t.CertFile)
	v.readable(path+".key_file", t.KeyFile)
	if t.ClientCAFile != "" {
		v.readable(path+".client_ca_file", t.ClientCAFile)
	}
}

// readable checks that the file p (relative to the config file) can be opened for reading.
func (v *validator) readable(path, p string) {
	f, err := os.Open(v.c.Resolve(p))
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil && fi.IsDir() {
			err = errors.New("is a directory")
		}
		f.Close()
	}
	if err != nil {
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			msg = pe.Err.Error()
		}
		v.add(path, "cannot read %s: %s", p, msg)
	}
}

// sse checks the server-side encryption fields of an S3 block that fraudpipe writes to.
func (v *validator) sse(path string, s S3) {
	switch s.SSE {
	case SSENone, SSES3, SSEKMS:
	default:
		v.add(path+".sse", "%q is not a server-side encryption: write AES256 (SSE-S3), aws:kms (SSE-KMS) or leave it empty for the bucket's default", s.SSE)
		return
	}
	if s.SSEKMSKeyID != "" && s.SSE != SSEKMS {
		v.add(path+".sse_kms_key_id", "is a KMS key for SSE-KMS: set sse: aws:kms with it, or remove it")
	}
}

// openSearchAuth checks one output.opensearch entry's authentication fields.
func (v *validator) openSearchAuth(path string, o OpenSearchOutput) {
	switch o.AuthMode() {
	case OpenSearchAuthBasic:
		if o.Auth == OpenSearchAuthBasic && o.Username == "" {
			v.add(path+".username", "must be set with auth: basic")
		}
	case OpenSearchAuthSigV4:
		if o.Username != "" || o.Password != "" {
			v.add(path+".auth", "sigv4 signs requests with AWS credentials from the standard chain; remove username and password, or use auth: basic")
		}
	case OpenSearchAuthNone:
		if o.Username != "" || o.Password != "" {
			v.add(path+".auth", "none sends no credentials; remove username and password, or use auth: basic")
		}
	}
	if o.AuthMode() != OpenSearchAuthSigV4 && o.AWSRegion != "" {
		v.add(path+".aws_region", "applies only to auth: sigv4; remove it or set auth: sigv4")
	}
}
