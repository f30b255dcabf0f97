package config

// AlertOutput is one output.alerts entry: decisions that match its routing are sent as
// alerts to a webhook, a NATS subject or the log.
type AlertOutput struct {
	Name        string   `yaml:"name" doc:"Names the alerter in metrics, logs and dead letters; empty means alert-<position>."`
	Type        string   `yaml:"type" default:"webhook" enum:"webhook,log,nats" doc:"webhook: POST JSON to url, signed; log: one structured log line per alert; nats: publish to subject."`
	Required    bool     `yaml:"required" default:"false" doc:"true: a source position is acknowledged only once its alerts are delivered (the pipeline waits while the receiver is down). false: best-effort, in the background."`
	On          []string `yaml:"on" default:"[decline, review]" enum:"approve,review,decline" doc:"Decisions that raise an alert."`
	Rules       []string `yaml:"rules" default:"[]" doc:"When not empty, alert only when one of these reason codes fired (e.g. rule:card_testing)."`
	MinScore    float64  `yaml:"min_score" default:"0" doc:"Alert only when the model score is at least this (0: any score, or none)."`
	URL         string   `yaml:"url" doc:"webhook: the endpoint."`
	Secret      Secret   `yaml:"secret" doc:"webhook: the HMAC-SHA256 key signing each request; write ${ALERT_WEBHOOK_SECRET}, never the key itself."`
	SecretFile  string   `yaml:"secret_file" doc:"webhook: a file holding the key (surrounding white space ignored), instead of secret."`
	RateLimit   float64  `yaml:"rate_limit" default:"50" doc:"webhook: most requests per second to the endpoint; 0 means no limit."`
	Timeout     Duration `yaml:"timeout" default:"5s" doc:"webhook: longest one request may take."`
	Workers     int      `yaml:"workers" default:"4" doc:"webhook: requests in flight; alerts of one card are always sent in order by one worker."`
	NATSURL     string   `yaml:"nats_url" default:"nats://127.0.0.1:4222" doc:"nats: the server."`
	Subject     string   `yaml:"subject" default:"fraudpipe.alerts" doc:"nats: the subject alerts are published to."`
	DedupSize   int      `yaml:"dedup_size" default:"100000" doc:"Transaction ids remembered to send each alert once."`
	QueueSize   int      `yaml:"queue_size" default:"10000" doc:"Best-effort only: most alerts waiting for delivery; beyond it they go to dead letters (reason sink_overflow)."`
	DeadLetters string   `yaml:"dead_letters" doc:"Where to put alerts that can never be delivered, each with its reason: an NDJSON file (appended to), or nats://host:port/subject; empty means <name>.dead.ndjson next to the config."`
	Batching    Batching `yaml:"batching" doc:"How alerts are grouped for delivery."`
	Retry       Retry    `yaml:"retry" doc:"How failed alerts are retried (429, 5xx and network errors; other 4xx are dead-lettered)."`
}
