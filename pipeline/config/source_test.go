package config

import (
	"strings"
	"testing"
)

func TestSourceDefaults(t *testing.T) {
	c := Default()
	n := c.Source.NATS
	if !n.Embedded || n.Stream != "TXN" || n.Subject != "txn" || n.Durable != "fraudpipe" || n.AckWait <= 2*c.Checkpoint.Interval {
		t.Errorf("source.nats defaults = %+v", n)
	}
	if c.Source.HTTP.Listen == "" || c.Source.Kinesis.Limit != 10000 || c.Source.S3.Format != "auto" {
		t.Errorf("source defaults = %+v", c.Source)
	}
}

func TestSourceValidate(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"nats ack_wait under the checkpoint interval",
			"source:\n  type: nats\n  nats:\n    ack_wait: 15s\ncheckpoint:\n  interval: 10s\n",
			"line 4: source.nats.ack_wait: 15s is not more than twice checkpoint.interval (10s)"},
		{"nats without url or embedded",
			"source:\n  type: nats\n  nats:\n    embedded: false\n", "source.nats.url: must name a NATS server"},
		{"nats wildcard subject",
			"source:\n  type: nats\n  nats:\n    subject: txn.>\n", "line 4: source.nats.subject: must be a subject prefix"},
		{"kinesis without stream",
			"source:\n  type: kinesis\n", "source.kinesis.stream: must name the Kinesis stream"},
		{"kinesis limit",
			"source:\n  type: kinesis\n  kinesis:\n    stream: tx\n    limit: 20000\n", "line 5: source.kinesis.limit: must be between 1 and 10000"},
		{"http half tls",
			"source:\n  type: http\n  http:\n    tls_cert: a.pem\n", "tls_cert and tls_key go together"},
		{"http short secret",
			"source:\n  type: http\n  http:\n    auth:\n      hs256_secret: short\n", "line 5: source.http.auth.hs256_secret: is 5 bytes"},
		{"s3 url",
			"source:\n  type: s3\n  s3:\n    url: bucket/x\n", "line 4: source.s3.url: must be s3://bucket/prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	ok := "source:\n  type: nats\n  nats:\n    partitions: 8\n"
	if _, err := Parse("c.yaml", []byte(ok), env(nil)); err != nil {
		t.Errorf("Parse(%q) = %v", ok, err)
	}
}
