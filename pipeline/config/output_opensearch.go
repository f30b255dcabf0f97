package config

// OpenSearchOutput is one output.opensearch entry: decisions indexed into OpenSearch for
// analysts, by the _bulk API, with the transaction id as document id.
type OpenSearchOutput struct {
	Name        string   `yaml:"name" doc:"Names the sink in metrics, logs and dead letters; empty means opensearch-<position>."`
	Required    bool     `yaml:"required" default:"true" doc:"true: a source position is acknowledged only once every decision before it is indexed (or dead-lettered); the pipeline waits while OpenSearch is down. false: best-effort, from a bounded queue in the background."`
	URLs        []string `yaml:"urls" default:"[http://localhost:9200]" doc:"OpenSearch nodes."`
	Auth        string   `yaml:"auth" enum:",basic,sigv4,none" doc:"How requests authenticate: basic (username and password), sigv4 (AWS Signature Version 4 for Amazon OpenSearch Service, with credentials from the standard AWS chain: AWS_ACCESS_KEY_ID, profiles, instance and task roles) or none. Empty: basic when username or password is set, else none."`
	Username    string   `yaml:"username" doc:"HTTP basic auth user."`
	Password    Secret   `yaml:"password" doc:"HTTP basic auth password; write ${OPENSEARCH_PASSWORD} or ${file:/run/secrets/opensearch_password}, never the password itself."`
	AWSRegion   string   `yaml:"aws_region" doc:"sigv4: the domain's AWS region, e.g. eu-west-1; empty: from the AWS chain (AWS_REGION)."`
	Service     string   `yaml:"service" default:"es" enum:"es,aoss" doc:"sigv4: the service signed for: es (OpenSearch Service domains) or aoss (OpenSearch Serverless collections)."`
	TLSInsecure bool     `yaml:"tls_skip_verify" default:"false" doc:"Skip TLS certificate verification (test clusters only)."`
	Index       string   `yaml:"index" default:"fraudpipe-decisions" doc:"Index name prefix (daily) or data stream name (data_stream)."`
	Mode        string   `yaml:"mode" default:"daily" enum:"daily,data_stream" doc:"daily: one index per UTC day of event time, <index>-2026.11.25; data_stream: one data stream named index, timestamped by ts."`
	Template    bool     `yaml:"install_template" default:"true" doc:"Install (or update) the index template and the ISM retention policy before the first write."`
	Retention   Duration `yaml:"retention" default:"90d" doc:"ISM policy: indices older than this are deleted; 0 installs no policy."`
	Features    bool     `yaml:"features" default:"false" doc:"Index the feature values under features.<name>; needs output.features: true."`
	QueueSize   int      `yaml:"queue_size" default:"100000" doc:"Best-effort only: most decisions waiting for delivery; beyond it they go to dead letters (reason sink_overflow)."`
	DeadLetters string   `yaml:"dead_letters" doc:"Where to put decisions that can never be indexed, each with its reason: an NDJSON file (appended to), or nats://host:port/subject; empty means <name>.dead.ndjson next to the config."`
	Batching    Batching `yaml:"batching" doc:"How decisions are grouped into _bulk requests."`
	Retry       Retry    `yaml:"retry" doc:"How failed documents are retried (429 and 5xx; mapping errors are dead-lettered at once)."`
}

// Secret is a string config value that must never be printed: its String and MarshalText
// methods hide it, so logging a config struct with %v or %+v, or encoding it as JSON, does
// not leak it. Reveal returns the value for the code that uses it.
type Secret string

// String returns a placeholder, never the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalText implements encoding.TextMarshaler with String's placeholder, so that a config
// encoded as JSON or YAML (a debug dump, a status endpoint) does not carry the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the code that uses it.
func (s Secret) Reveal() string { return string(s) }
