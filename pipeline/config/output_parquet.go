package config

// ParquetOutput is output.parquet: every decision archived in Parquet files, partitioned by
// event time (dt=2026-11-25/hour=10/), in a folder or an S3 bucket (docs/parquet.md).
type ParquetOutput struct {
	Path        string   `yaml:"path" doc:"Where the files go: a folder (a path or a file:// URL; relative paths are relative to this config file) or s3://bucket/prefix. Empty: no Parquet archive."`
	SpoolDir    string   `yaml:"spool_dir" default:"parquet-spool" doc:"Local folder where rows wait, fsynced at every engine flush, until their file is rolled and written; it must survive a restart (the next process writes what it finds there). Relative to this config file."`
	RollSizeMB  int      `yaml:"roll_size_mb" default:"256" doc:"A file is rolled when its rows take this many MiB in the spool (the Parquet file is several times smaller)."`
	RollAge     Duration `yaml:"roll_age" default:"5m" doc:"A file is rolled when its first row was written this long ago, so an hour's data reaches the archive within about this delay."`
	RowGroupMB  int      `yaml:"row_group_mb" default:"64" doc:"Target compressed size of one row group, in MiB; about this much memory is used while a file is written."`
	Compression string   `yaml:"compression" default:"zstd" enum:"zstd,snappy,none" doc:"Codec of the Parquet pages: zstd (level 1), snappy or none. zstd files are under a third the size of snappy's for about the same CPU."`
	PartSizeMB  int      `yaml:"part_size_mb" default:"8" doc:"S3 multipart upload part size, in MiB (5 or more); one part is in memory at a time."`
	Retries     int      `yaml:"retries" default:"8" doc:"Attempts to write one file, with exponential backoff from 1s, before the sink reports failure and the engine stops; the file stays in the spool for the next process."`
	S3          S3       `yaml:"s3" doc:"How to reach S3 when path is an s3:// URL."`
}

// S3 locates an S3 service and, optionally, the credentials for it (checkpoints and the
// Parquet archive use it alike).
type S3 struct {
	Endpoint        string `yaml:"endpoint" doc:"Endpoint URL of an S3-compatible server, e.g. http://127.0.0.1:9000; empty for AWS."`
	Region          string `yaml:"region" doc:"AWS region; empty: from the AWS chain."`
	PathStyle       bool   `yaml:"path_style" default:"false" doc:"Put the bucket in the URL path, as most S3-compatible servers want."`
	AccessKeyID     string `yaml:"access_key_id" doc:"Access key id; empty: credentials from the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, instance roles)."`
	SecretAccessKey Secret `yaml:"secret_access_key" doc:"Secret access key, with access_key_id; write ${AWS_SECRET_ACCESS_KEY}, never the key itself."`
	SessionToken    Secret `yaml:"session_token" doc:"Session token of temporary credentials; write ${AWS_SESSION_TOKEN}."`
	SSE             string `yaml:"sse" doc:"Server-side encryption asked for on every object fraudpipe writes (checkpoints, the Parquet archive): AES256 (SSE-S3) or aws:kms (SSE-KMS); empty: the bucket's default encryption. Not for source.s3, which only reads."`
	SSEKMSKeyID     string `yaml:"sse_kms_key_id" doc:"With sse aws:kms: the KMS key id, ARN or alias (alias/fraudpipe); empty: the AWS-managed key aws/s3."`
}
