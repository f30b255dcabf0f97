package config

// Source selects the input of fraudpipe run.
type Source struct {
	Type    string        `yaml:"type" default:"file" enum:"file,stdin,nats,kinesis,http,s3" doc:"file: an NDJSON file (plain or .gz); stdin: NDJSON on standard input; nats: a NATS JetStream stream (embedded by default); kinesis: an AWS Kinesis data stream; http: the synchronous decision API; s3: batch files under an S3 prefix. See docs/sources.md."`
	Path    string        `yaml:"path" doc:"The file to read, for type file."`
	NATS    NATSSource    `yaml:"nats" doc:"The JetStream stream and durable consumer, for type nats."`
	Kinesis KinesisSource `yaml:"kinesis" doc:"The Kinesis stream, for type kinesis."`
	HTTP    HTTPSource    `yaml:"http" doc:"The decision API listener, for type http (docs/api.md)."`
	S3      S3Source      `yaml:"s3" doc:"The bucket and prefix of batch files, for type s3."`
}

// NATSSource is source.nats.
type NATSSource struct {
	URL           string   `yaml:"url" doc:"NATS server URL, e.g. nats://nats-1:4222,nats://nats-2:4222; empty with embedded true."`
	Embedded      bool     `yaml:"embedded" default:"true" doc:"Start a NATS server with JetStream inside this process (for one machine and for trying fraudpipe out); ignored when url is set."`
	StoreDir      string   `yaml:"store_dir" default:"nats" doc:"Where the embedded server keeps its streams; relative to this config file."`
	Listen        string   `yaml:"listen" default:"127.0.0.1:4222" doc:"Address the embedded server listens on, so producers (fraudpipe publish) can reach it."`
	CredsFile     string   `yaml:"creds_file" doc:"NATS credentials file (JWT and NKey) for an external server; relative to this config file."`
	Token         Secret   `yaml:"token" doc:"Authentication token for an external server; write ${NATS_TOKEN}, never the token itself."`
	Stream        string   `yaml:"stream" default:"TXN" doc:"JetStream stream name; created when missing."`
	Subject       string   `yaml:"subject" default:"txn" doc:"Subject prefix: producers publish on <subject>.in (or <subject>.in.<card_id> when partitioned)."`
	Partitions    int      `yaml:"partitions" default:"0" doc:"Key partitions of the stream by JetStream subject mapping (<subject>.in.<card_id> stored on <subject>.<p>), for scale-out; 0: one unpartitioned subject. Fixed for a deployment."`
	Replicas      int      `yaml:"replicas" default:"0" doc:"Copies of the stream in a NATS cluster (1, 3 or 5) when fraudpipe creates it or changes it; 0: 1 for a new stream, and an existing stream's count is left as it is."`
	Durable       string   `yaml:"durable" default:"fraudpipe" doc:"Durable consumer name; instances sharing one name share its position."`
	AckWait       Duration `yaml:"ack_wait" default:"2m" doc:"How long the server waits for an acknowledgement before redelivering; must exceed checkpoint.interval, since messages are acknowledged only when a checkpoint covers them."`
	MaxAckPending int      `yaml:"max_ack_pending" default:"1000000" doc:"Most messages delivered and not yet acknowledged. Messages are acknowledged at checkpoints, so this must exceed what arrives in one checkpoint.interval at full rate, or reading pauses until the next checkpoint."`
	FetchBatch    int      `yaml:"fetch_batch" default:"2048" doc:"Messages pulled per request."`
}

// KinesisSource is source.kinesis.
type KinesisSource struct {
	Stream          string   `yaml:"stream" doc:"Stream name or ARN."`
	Endpoint        string   `yaml:"endpoint" doc:"Endpoint URL of a Kinesis-compatible server, e.g. http://127.0.0.1:4567; empty for AWS."`
	Region          string   `yaml:"region" doc:"AWS region; empty: from the AWS chain."`
	AccessKeyID     string   `yaml:"access_key_id" doc:"Access key id; empty: credentials from the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, instance roles)."`
	SecretAccessKey Secret   `yaml:"secret_access_key" doc:"Secret access key, with access_key_id; write ${AWS_SECRET_ACCESS_KEY}, never the key itself."`
	SessionToken    Secret   `yaml:"session_token" doc:"Session token of temporary credentials; write ${AWS_SESSION_TOKEN}."`
	StartAt         string   `yaml:"start_at" default:"trim_horizon" enum:"trim_horizon,latest" doc:"Where a shard without a checkpointed position starts: the oldest record kept, or only new ones. Shards born of a reshard after a checkpoint always start at their beginning."`
	Limit           int      `yaml:"limit" default:"10000" doc:"Records per GetRecords call (at most 10000)."`
	PollInterval    Duration `yaml:"poll_interval" default:"200ms" doc:"Wait before polling a shard that returned nothing (Kinesis allows 5 reads a second per shard)."`
	ShardRefresh    Duration `yaml:"shard_refresh" default:"10s" doc:"How often the shard list is read again to find new shards after a reshard."`
}

// HTTPSource is source.http: the synchronous decision API.
type HTTPSource struct {
	Listen        string   `yaml:"listen" default:"127.0.0.1:8080" doc:"Address of POST /v1/transactions and POST /v1/transactions/batch."`
	TLSCert       string   `yaml:"tls_cert" doc:"PEM certificate file; with tls_key the API speaks HTTPS only. Relative to this config file."`
	TLSKey        string   `yaml:"tls_key" doc:"PEM private key file of tls_cert."`
	Auth          HTTPAuth `yaml:"auth" doc:"JWT bearer authentication; without a key every request is accepted."`
	RateLimit     float64  `yaml:"rate_limit" default:"0" doc:"Requests per second allowed to each client (the token's sub, or the remote address without auth); 0: no limit."`
	Burst         int      `yaml:"burst" default:"100" doc:"Requests a client may send at once above rate_limit."`
	MaxBodyBytes  int      `yaml:"max_body_bytes" default:"65536" doc:"Largest body of POST /v1/transactions."`
	MaxBatchBytes int      `yaml:"max_batch_bytes" default:"4194304" doc:"Largest body of POST /v1/transactions/batch."`
	MaxBatch      int      `yaml:"max_batch" default:"1000" doc:"Most transactions in one batch request."`
	Timeout       Duration `yaml:"timeout" default:"2s" doc:"A request not decided within this time is answered 503 with Retry-After; its client retries with the same id."`
}

// HTTPAuth is source.http.auth.
type HTTPAuth struct {
	HS256Secret Secret   `yaml:"hs256_secret" doc:"Shared secret of HS256 tokens; write ${FRAUDPIPE_JWT_SECRET}, never the secret itself."`
	JWKSFile    string   `yaml:"jwks_file" doc:"JWKS file with the RS256 public keys tokens are signed with (by kid). Relative to this config file."`
	Audience    string   `yaml:"audience" doc:"Required aud claim; empty: not checked."`
	Issuer      string   `yaml:"issuer" doc:"Required iss claim; empty: not checked."`
	Leeway      Duration `yaml:"leeway" default:"30s" doc:"Clock skew tolerated on exp and nbf."`
}

// S3Source is source.s3: batch files under a prefix.
type S3Source struct {
	URL    string   `yaml:"url" doc:"s3://bucket/prefix of the batch files."`
	Format string   `yaml:"format" default:"auto" enum:"auto,ndjson,csv,parquet" doc:"File format; auto: by extension (.ndjson, .jsonl, .json, .csv, each optionally .gz; .parquet)."`
	Poll   Duration `yaml:"poll" default:"0s" doc:"How often to look for new files; 0: read what is there and stop."`
	S3     S3       `yaml:"s3" doc:"How to reach S3."`
}
