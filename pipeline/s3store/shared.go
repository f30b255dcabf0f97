package s3store

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

var _ pipeline.SharedStore = (*Store)(nil)

// Sub is the store under prefix/name, with the same client and options.
func (s *Store) Sub(name string) (pipeline.CheckpointStore, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("checkpoint store %s: %q is not a name", s, name)
	}
	sub := *s
	sub.prefix = strings.TrimPrefix(s.prefix+"/"+name, "/")
	return &sub, nil
}

// Subs lists the names under the prefix that hold other stores (not chk-<id> checkpoints).
func (s *Store) Subs(ctx context.Context) ([]string, error) {
	prefix := s.prefix
	if prefix != "" {
		prefix += "/"
	}
	var names []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/"),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
			if name != "" && !strings.HasPrefix(name, "chk-") {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}
