package config

// Batching is the batching block every batching sink shares (Redpanda Connect's shape): a
// batch is sent when it holds count items or byte_size bytes, or when period has passed
// since its first item, whichever comes first.
type Batching struct {
	Count    int      `yaml:"count" default:"500" doc:"Most items in one batch sent to the target; 0 means no limit by count."`
	ByteSize int      `yaml:"byte_size" default:"5000000" doc:"Most bytes (approximate, as encoded) in one batch; 0 means no limit by size."`
	Period   Duration `yaml:"period" default:"1s" doc:"Longest a best-effort sink holds an item before sending a partial batch. A required sink sends everything at each engine flush."`
}

// Retry is the retry block every sink shares: exponential backoff with jitter between
// attempts, retrying only the items the target reported as retryable.
type Retry struct {
	MaxRetries int     `yaml:"max_retries" default:"0" doc:"Attempts after the first before a best-effort sink dead-letters an item; 0 means limited by backoff.max_elapsed_time only. Required sinks retry retryable failures without limit."`
	Backoff    Backoff `yaml:"backoff" doc:"Waits between attempts."`
}

// Backoff configures exponential backoff with jitter.
type Backoff struct {
	InitialInterval Duration `yaml:"initial_interval" default:"500ms" doc:"Wait before the first retry; each later wait doubles, with +-50% jitter."`
	MaxInterval     Duration `yaml:"max_interval" default:"10s" doc:"Longest wait between two attempts."`
	MaxElapsedTime  Duration `yaml:"max_elapsed_time" default:"1m" doc:"A best-effort sink dead-letters an item still failing this long after its first attempt; 0 means no limit."`
}
