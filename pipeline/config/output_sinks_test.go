package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSinkOutputs(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"OS_PW": "hunter2", "HOOK": "k3y"}[k]
		return v, ok
	}
	c, err := Parse("s.yaml", []byte(`
output:
  opensearch:
    - urls: [http://os:9200]
      password: ${OS_PW}
      batching: {count: 10}
    - name: archive
      mode: data_stream
      required: false
      retry: {max_retries: 3, backoff: {initial_interval: 1s}}
  alerts:
    - url: http://hook/a
      secret: ${HOOK}
      on: [decline]
    - type: log
`), env)
	if err != nil {
		t.Fatal(err)
	}
	os0, os1 := c.Output.OpenSearch[0], c.Output.OpenSearch[1]
	if os0.Password.Reveal() != "hunter2" || !os0.Required || os0.Index != "fraudpipe-decisions" || os0.Mode != "daily" ||
		os0.Batching.Count != 10 || os0.Batching.ByteSize != 5000000 || time.Duration(os0.Retry.Backoff.MaxInterval) != 10*time.Second {
		t.Errorf("opensearch[0] = %+v", os0)
	}
	if os1.Name != "archive" || os1.Mode != "data_stream" || os1.Required || os1.Retry.MaxRetries != 3 ||
		time.Duration(os1.Retry.Backoff.InitialInterval) != time.Second || len(os1.URLs) != 1 {
		t.Errorf("opensearch[1] = %+v", os1)
	}
	a0, a1 := c.Output.Alerts[0], c.Output.Alerts[1]
	if a0.Type != "webhook" || a0.Secret.Reveal() != "k3y" || len(a0.On) != 1 || a0.Required || a0.RateLimit != 50 {
		t.Errorf("alerts[0] = %+v", a0)
	}
	if a1.Type != "log" || strings.Join(a1.On, ",") != "decline,review" {
		t.Errorf("alerts[1] = %+v", a1)
	}
	if s := fmt.Sprintf("%v %+v", c.Output, a0); strings.Contains(s, "hunter2") || strings.Contains(s, "k3y") {
		t.Errorf("a secret is printed: %s", s)
	}
}

func TestSinkOutputsBad(t *testing.T) {
	_, err := Parse("s.yaml", []byte(`
output:
  opensearch:
    - mode: weekly
      urlz: [x]
  alerts:
    - on: [panic]
`), noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"line 4: output.opensearch[0].mode", "weekly", "line 5: field urlz", "line 7: output.alerts[0].on", "panic"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}
