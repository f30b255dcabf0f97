package remote

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// sageMakerServer implements SageMaker runtime's InvokeEndpoint REST call
// (POST /endpoints/{EndpointName}/invocations, the body passed through, the model's answer
// as the response body) on loopback.
type sageMakerServer struct {
	*httptest.Server
	mu       sync.Mutex
	path     string
	body     string
	header   http.Header
	answer   string // the response body
	ctype    string // the response's content type
	status   int
	errType  string // x-amzn-ErrorType of an error answer
	blocking bool
}

func newSageMakerServer(t *testing.T) *sageMakerServer {
	t.Helper()
	s := &sageMakerServer{answer: "0.93\n", ctype: "text/csv", status: http.StatusOK}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.path, s.body, s.header = r.Method+" "+r.URL.Path, string(b), r.Header.Clone()
		answer, ctype, status, errType, blocking := s.answer, s.ctype, s.status, s.errType, s.blocking
		s.mu.Unlock()
		if blocking {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("x-Amzn-Invoked-Production-Variant", "AllTraffic")
		w.Header().Set("x-amzn-RequestId", "test-request")
		if errType != "" {
			w.Header().Set("x-amzn-ErrorType", errType)
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(func() {
		close(release)
		s.Close()
	})
	return s
}

func (s *sageMakerServer) set(fn func(*sageMakerServer)) {
	s.mu.Lock()
	fn(s)
	s.mu.Unlock()
}

func (s *sageMakerServer) request() (path, body string, h http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path, s.body, s.header
}

func sageMakerCaller(t *testing.T, url, contentType string) *SageMaker {
	t.Helper()
	c, err := NewSageMaker(context.Background(), SageMakerOptions{
		EndpointName: "fraud-xgb", ContentType: contentType, Endpoint: url, Region: "eu-west-1",
		AccessKeyID: "AKIDTEST", SecretAccessKey: "secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSageMakerCSV(t *testing.T) {
	srv := newSageMakerServer(t)
	fx := newFixture(t, sageMakerCaller(t, srv.URL, ""), Config{Name: "sm", Features: []string{"amount", "card_count_1d", "secs_since_last"}})
	ev := fx.score("tx-1", map[string]float64{"amount": 950.25, "card_count_1d": math.NaN(), "secs_since_last": 30})
	if !ev.HasScore || ev.Score != 0.93 || !reflect.DeepEqual(reasons(ev), []string{"decline model:score>=0.90"}) {
		t.Errorf("score %v %v, reasons %q; want 0.93 and a decline", ev.HasScore, ev.Score, reasons(ev))
	}
	path, body, h := srv.request()
	if path != "POST /endpoints/fraud-xgb/invocations" {
		t.Errorf("request %s", path)
	}
	if body != "950.25,,30" {
		t.Errorf("body %q, want the features in order, a missing one empty", body)
	}
	if h.Get("Content-Type") != "text/csv" || h.Get("Accept") != "text/csv" {
		t.Errorf("content type %q, accept %q", h.Get("Content-Type"), h.Get("Accept"))
	}
	if a := h.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(a, "/eu-west-1/sagemaker/") {
		t.Errorf("authorization %q: want a SigV4 signature for sagemaker in eu-west-1", a)
	}
	if _, v := fx.f.Version(); v != "remote:sm" {
		t.Errorf("version %s", v)
	}
}

func TestSageMakerJSON(t *testing.T) {
	srv := newSageMakerServer(t)
	srv.set(func(s *sageMakerServer) { s.answer, s.ctype = `{"predictions": [{"score": 0.6}]}`, "application/json" })
	fx := newFixture(t, sageMakerCaller(t, srv.URL, ContentJSON), Config{Name: "sm", Features: []string{"amount", "secs_since_last"}})
	ev := fx.score("tx-7", map[string]float64{"amount": 12, "secs_since_last": 3600})
	if !ev.HasScore || ev.Score != 0.6 || !reflect.DeepEqual(reasons(ev), []string{"review model:score>=0.5"}) {
		t.Errorf("score %v %v, reasons %q", ev.HasScore, ev.Score, reasons(ev))
	}
	_, body, h := srv.request()
	if want := `{"id":"tx-7","features":{"amount":12,"secs_since_last":3600}}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}
	if h.Get("Content-Type") != ContentJSON {
		t.Errorf("content type %q", h.Get("Content-Type"))
	}
}

func TestSageMakerFailures(t *testing.T) {
	srv := newSageMakerServer(t)
	for _, c := range []struct {
		name string
		set  func(*sageMakerServer)
		stat func(Stats) int64
	}{
		{"model error", func(s *sageMakerServer) {
			s.status, s.errType, s.ctype, s.answer = 424, "ModelError", "application/json", `{"message":"the model container failed"}`
		}, func(s Stats) int64 { return s.Status }},
		{"throttled", func(s *sageMakerServer) {
			s.status, s.errType, s.ctype, s.answer = 429, "ThrottlingException", "application/json", `{"message":"slow down"}`
		}, func(s Stats) int64 { return s.Status }},
		{"garbage", func(s *sageMakerServer) {
			s.status, s.errType, s.ctype, s.answer = 200, "", "text/csv", "label\n"
		}, func(s Stats) int64 { return s.Invalid }},
		{"timeout", func(s *sageMakerServer) {
			s.blocking = true
		}, func(s Stats) int64 { return s.Timeouts }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.set(func(s *sageMakerServer) {
				s.status, s.errType, s.ctype, s.answer, s.blocking = 200, "", "text/csv", "0.1", false
				c.set(s)
			})
			fx := newFixture(t, sageMakerCaller(t, srv.URL, ""), Config{Name: "sm", Fallback: FailClosed, Timeout: 200 * time.Millisecond})
			ev := fx.score("tx", map[string]float64{"amount": 1})
			if ev.HasScore || !reflect.DeepEqual(reasons(ev), []string{"review remote:unavailable"}) {
				t.Errorf("score %v, reasons %q", ev.HasScore, reasons(ev))
			}
			if st := fx.f.Stats(); c.stat(st) != 1 || st.Calls != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestNewSageMakerErrors(t *testing.T) {
	for _, c := range []struct {
		o    SageMakerOptions
		want string
	}{
		{SageMakerOptions{Region: "eu-west-1"}, "endpoint_name is not set"},
		{SageMakerOptions{EndpointName: "e", Region: "eu-west-1", ContentType: "text/plain"}, "content_type"},
		{SageMakerOptions{EndpointName: "e", Region: "eu-west-1", AccessKeyID: "AKID"}, "both access_key_id and secret_access_key"},
	} {
		if _, err := NewSageMaker(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
}
