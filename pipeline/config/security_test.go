package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecurityFields(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "ok.yaml")
	os.WriteFile(cfg, []byte(`
admin:
  listen: 127.0.0.1:9464
  tls: {cert_file: cert.pem, key_file: key.pem, client_ca_file: ca.pem}
checkpoint:
  dir: s3://ckpt/prod
  s3: {sse: aws:kms, sse_kms_key_id: alias/fraudpipe}
output:
  parquet:
    path: s3://archive/decisions
    s3: {sse: AES256}
  opensearch:
    - {auth: sigv4, aws_region: eu-west-1, service: aoss}
    - {username: fraud, password: pw}
    - {}
`), 0o600)
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Admin.TLS.Enabled() || c.Checkpoint.S3.SSE != SSEKMS || c.Output.Parquet.S3.SSE != SSES3 {
		t.Errorf("config = %+v %+v", c.Admin, c.Checkpoint.S3)
	}
	for i, want := range []string{OpenSearchAuthSigV4, OpenSearchAuthBasic, OpenSearchAuthNone} {
		if got := c.Output.OpenSearch[i].AuthMode(); got != want {
			t.Errorf("opensearch[%d] auth = %s, want %s", i, got, want)
		}
	}
	if got := c.Output.OpenSearch[0].Service; got != "aoss" {
		t.Errorf("service = %q", got)
	}
	if got := c.Output.OpenSearch[1].Service; got != "es" {
		t.Errorf("default service = %q, want es", got)
	}
}

func TestSecurityFieldsBad(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("pem"), 0o600)
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"cert without key", "admin:\n  listen: :9464\n  tls:\n    cert_file: cert.pem\n",
			[]string{"line 4: admin.tls.cert_file: cert_file and key_file go together: set both for HTTPS, or neither"}},
		{"client CA without a certificate", "admin:\n  tls: {client_ca_file: cert.pem}\n",
			[]string{"line 2: admin.tls.client_ca_file: needs cert_file and key_file: client certificates are asked for only over HTTPS"}},
		{"unreadable files", "admin:\n  listen: :9464\n  tls:\n    cert_file: cert.pem\n    key_file: nokey.pem\n    client_ca_file: noca.pem\n",
			[]string{"line 5: admin.tls.key_file: cannot read nokey.pem: no such file or directory",
				"line 6: admin.tls.client_ca_file: cannot read noca.pem: no such file or directory"}},
		{"API key unreadable", "source:\n  type: http\n  http: {tls_cert: cert.pem, tls_key: gone.pem}\n",
			[]string{"line 3: source.http.tls_key: cannot read gone.pem: no such file or directory"}},
		{"unknown sse", "checkpoint:\n  s3:\n    sse: aes256\n",
			[]string{`line 3: checkpoint.s3.sse: "aes256" is not a server-side encryption: write AES256 (SSE-S3), aws:kms (SSE-KMS) or leave it empty for the bucket's default`}},
		{"kms key without kms", "output:\n  parquet:\n    s3: {sse: AES256, sse_kms_key_id: alias/x}\n",
			[]string{"line 3: output.parquet.s3.sse_kms_key_id: is a KMS key for SSE-KMS: set sse: aws:kms with it, or remove it"}},
		{"sse on a reader", "source:\n  type: s3\n  s3:\n    url: s3://in/x\n    s3: {sse: AES256}\n",
			[]string{"source.s3.s3.sse: fraudpipe only reads the batch files"}},
		{"sigv4 with a password", "output:\n  opensearch:\n    - auth: sigv4\n      password: pw\n",
			[]string{"line 3: output.opensearch[0].auth: sigv4 signs requests with AWS credentials from the standard chain; remove username and password, or use auth: basic"}},
		{"basic without user", "output:\n  opensearch:\n    - auth: basic\n",
			[]string{"output.opensearch[0].username: must be set with auth: basic"}},
		{"region without sigv4", "output:\n  opensearch:\n    - aws_region: eu-west-1\n",
			[]string{"line 3: output.opensearch[0].aws_region: applies only to auth: sigv4; remove it or set auth: sigv4"}},
		{"unknown auth", "output:\n  opensearch:\n    - auth: kerberos\n",
			[]string{`output.opensearch[0].auth`}},
		{"bad escape in the password, never quoted", "ledger:\n  driver: postgres\n  url: postgres://u:p%Zw0rd@db/ledger\n",
			[]string{"line 3: ledger.url: has a % that does not start a %XX escape (in the user, password, host or path): write %25 for a literal %, and percent-encode @, :, / and # in a password"}},
		{"bad port", "ledger:\n  driver: postgres\n  url: postgres://u:pw0rd@db:x5432/ledger\n",
			[]string{"line 3: ledger.url: is not a valid URL (such as postgres://fraudpipe:${PGPASSWORD}@db:5432/ledger): check the port is a number and the password's @, :, / and # are percent-encoded"}},
		{"other scheme", "ledger:\n  driver: postgres\n  url: mysql://u:pw0rd@db/ledger\n",
			[]string{"line 3: ledger.url: must be a postgres:// or postgresql:// URL, not mysql://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.yaml")
			os.WriteFile(p, []byte(tt.yaml), 0o600)
			var got []string
			for _, is := range Lint(p, noEnv) {
				got = append(got, is.String())
			}
			all := strings.Join(got, "\n")
			if strings.Contains(all, "pw0rd") || strings.Contains(all, "p%Zw0rd") {
				t.Errorf("an issue quotes the password:\n%s", all)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("issues:\n%s\nwant %d", all, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("issue %d = %s\nwant it to contain %s", i, got[i], w)
				}
			}
		})
	}
}
