package awsconf

import (
	"context"
	"testing"
)

func TestLoadStatic(t *testing.T) {
	cfg, err := Load(context.Background(), "test", Static{Region: "eu-west-1", AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region = %q", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKID" || creds.SecretAccessKey != "secret" || creds.SessionToken != "tok" {
		t.Errorf("credentials = %+v", creds)
	}
}

func TestLoadChain(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-2")
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	cfg, err := Load(context.Background(), "test", Static{})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-2" || creds.AccessKeyID != "ENVKEY" {
		t.Errorf("from the chain: region %q, key %q", cfg.Region, creds.AccessKeyID)
	}
}
