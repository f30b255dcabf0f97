package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sagemakerruntime"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/fraudpipe/fraudpipe/pipeline/awsconf"
)

// SageMaker content types.
const (
	// ContentCSV sends the feature values as one CSV row in the configured order, the
	// format of SageMaker's built-in XGBoost container.
	ContentCSV = "text/csv"
	// ContentJSON sends the same JSON object as the HTTP JSON caller.
	ContentJSON = "application/json"
)

// SageMakerAPI is the part of the SageMaker runtime client the caller uses.
// *sagemakerruntime.Client implements it.
type SageMakerAPI interface {
	InvokeEndpoint(ctx context.Context, in *sagemakerruntime.InvokeEndpointInput, opts ...func(*sagemakerruntime.Options)) (*sagemakerruntime.InvokeEndpointOutput, error)
}

// SageMakerOptions configures a SageMaker endpoint.
type SageMakerOptions struct {
	// EndpointName is the SageMaker endpoint to invoke.
	EndpointName string
	// ContentType is ContentCSV (default) or ContentJSON.
	ContentType string
	// Accept is the answer's content type asked for; default the ContentType.
	Accept string
	// TargetVariant, when set, sends every call to that production variant.
	TargetVariant string
	// Region is the AWS region; empty takes it from the environment and shared config.
	Region string
	// Endpoint overrides the service URL (a VPC endpoint, a test server); empty means AWS.
	Endpoint string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials; with no access
	// key the standard AWS chain is used (environment, shared files, instance role, ...).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Client replaces the client built from the fields above (tests, custom middleware).
	Client SageMakerAPI
}

// SageMaker calls a SageMaker runtime endpoint (InvokeEndpoint).
type SageMaker struct {
	o      SageMakerOptions
	client SageMakerAPI
}

// NewSageMaker checks the options and builds the client. The client does not retry: a
// call has one chance within the scorer's timeout, and the breaker handles an endpoint
// that keeps failing.
func NewSageMaker(ctx context.Context, o SageMakerOptions) (*SageMaker, error) {
	if o.EndpointName == "" {
		return nil, errors.New("remote scorer: sagemaker endpoint_name is not set: give the SageMaker endpoint to invoke")
	}
	switch o.ContentType {
	case "":
		o.ContentType = ContentCSV
	case ContentCSV, ContentJSON:
	default:
		return nil, fmt.Errorf("remote scorer: sagemaker content_type %q is not %s or %s", o.ContentType, ContentCSV, ContentJSON)
	}
	if o.Accept == "" {
		o.Accept = o.ContentType
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		return nil, errors.New("remote scorer: sagemaker: give both access_key_id and secret_access_key, or neither to use the standard AWS credential chain")
	}
	s := &SageMaker{o: o, client: o.Client}
	if s.client == nil {
		cfg, err := awsconf.Load(ctx, "remote scorer: sagemaker", awsconf.Static{
			Region: o.Region, AccessKeyID: o.AccessKeyID, SecretAccessKey: o.SecretAccessKey, SessionToken: o.SessionToken})
		if err != nil {
			return nil, err
		}
		if cfg.Region == "" {
			if o.Endpoint == "" {
				return nil, errors.New("remote scorer: sagemaker: no AWS region: set region in the config or AWS_REGION")
			}
			cfg.Region = "us-east-1" // a test server ignores it, but requests must be signed for one
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
		s.client = sagemakerruntime.NewFromConfig(cfg, func(so *sagemakerruntime.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
			so.Retryer = aws.NopRetryer{}
			so.HTTPClient = &http.Client{Transport: t}
		})
	}
	return s, nil
}

// Call invokes the endpoint with the transaction's features and reads the score.
func (s *SageMaker) Call(ctx context.Context, req *Request) (float64, error) {
	body := make([]byte, 0, 64+32*len(req.Names)) // not pooled: see HTTP.Call
	if s.o.ContentType == ContentCSV {
		body = appendCSVRequest(body, req)
	} else {
		body = appendJSONRequest(body, req)
	}
	in := &sagemakerruntime.InvokeEndpointInput{
		EndpointName: aws.String(s.o.EndpointName),
		ContentType:  aws.String(s.o.ContentType),
		Accept:       aws.String(s.o.Accept),
		Body:         body,
	}
	if s.o.TargetVariant != "" {
		in.TargetVariant = aws.String(s.o.TargetVariant)
	}
	out, err := s.client.InvokeEndpoint(ctx, in)
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && ctx.Err() == nil {
			return 0, fmt.Errorf("%w: %v", ErrStatus, err)
		}
		return 0, err
	}
	return parseScore(out.Body)
}

var _ Caller = (*SageMaker)(nil)
