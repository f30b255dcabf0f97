// Package chaos holds the fault-matrix test and the soak run of fraudpipe: the real binary
// reads a NATS JetStream stream from an external server while the test stops and restarts
// the things around it (the process itself, the NATS server, S3, OpenSearch, the alert
// webhook, the checkpoint disk), then checks that every transaction was decided, posted,
// indexed, archived and alerted on as docs/reliability.md promises.
//
// The non-test files are the small pieces of infrastructure the tests drive: an HTTP
// server that can be stopped and started again on the same address, a Prometheus text
// scraper, and a JetStream publisher that keeps a steady rate through server restarts.
package chaos
