// Package awsconf loads the AWS configuration every AWS client of fraudpipe starts from
// (S3 for checkpoints, batch files and the archive; Kinesis; SageMaker): the region and
// static credentials when the config gives them, the standard AWS chain (environment,
// shared profiles, instance and task roles) for whatever it leaves empty.
package awsconf

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Static is what a config may set itself; empty fields come from the AWS chain.
type Static struct {
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// Load returns the AWS configuration for s; what names the client in errors ("kinesis").
func Load(ctx context.Context, what string, s Static) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if s.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.Region))
	}
	if s.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, s.SessionToken)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("%s: aws config: %w", what, err)
	}
	return cfg, nil
}
