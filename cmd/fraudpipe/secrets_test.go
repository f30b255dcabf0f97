package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
	"github.com/fraudpipe/fraudpipe/sinks/opensearch"
	"github.com/fraudpipe/fraudpipe/sinks/parquet"
	"github.com/fraudpipe/fraudpipe/sinks/sinktest"
)

// The secrets of TestSecretsNeverLeak: distinctive values, so that any appearance in any
// output is found by a plain search. Each kind of secret the config takes is here.
var leakSecrets = map[string]string{
	"webhook secret":                          "whsec-LEAKCHECK-7f3a9c1e",
	"JWT HS256 key":                           "jwtkey-LEAKCHECK-0123456789abcdef0123456789",
	"PostgreSQL password":                     "pgpass-LEAKCHECK-b5d1",
	"PostgreSQL password that breaks its URL": "pg%LEAKCHECK-c6e2",
	"OpenSearch password":                     "ospass-LEAKCHECK-e2c4",
	"AWS secret access key":                   "awssecret-LEAKCHECK-9e8d7c6b5a",
	"remote model token":                      "bearer-LEAKCHECK-4b2f8a",
}

// recorder is an HTTP test double that answers every request with a fixed status and
// keeps what it was sent.
type recorder struct {
	status int
	body   string
	mu     sync.Mutex
	reqs   []string // method, URL, headers and body of each request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var dump bytes.Buffer
	fmt.Fprintf(&dump, "%s %s\n", req.Method, req.URL)
	req.Header.Write(&dump)
	dump.Write(b)
	r.mu.Lock()
	r.reqs = append(r.reqs, dump.String())
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// hs256Token returns a signed JWT for the decision API.
func hs256Token(key, sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc(fmt.Appendf(nil, `{"sub":%q,"exp":%d}`, sub, exp.Unix()))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(head + "." + claims))
	return head + "." + claims + "." + enc(mac.Sum(nil))
}

// leakCheck collects everything fraudpipe wrote or sent, by where it came from, and
// finally searches it for every secret.
type leakCheck struct {
	seen map[string][]byte
}

func (l *leakCheck) add(where string, b []byte) {
	l.seen[where] = append(l.seen[where], b...)
}

// addFiles adds every file under dir that fraudpipe wrote (everything but skip).
func (l *leakCheck) addFiles(t *testing.T, dir string, skip map[string]bool) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || skip[p] {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		l.add("file "+rel, b)
		return nil
	})
}

// find returns a line for every secret found in what was collected, with its context.
func (l *leakCheck) find() []string {
	var found []string
	for where, b := range l.seen {
		for kind, secret := range leakSecrets {
			// The plain value, and the encodings a log or a JSON body could carry it in.
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), strings.ReplaceAll(secret, "-", `\u002d`)} {
				if i := bytes.Index(b, []byte(form)); i >= 0 {
					lo, hi := max(0, i-120), min(len(b), i+len(form)+40)
					found = append(found, fmt.Sprintf("the %s appears in %s: ...%s...", kind, where, b[lo:hi]))
				}
			}
		}
	}
	return found
}

// check fails t for every secret found.
func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	for _, f := range l.find() {
		t.Error(f)
	}
}

// TestLeakCheckFinds makes sure the search of TestSecretsNeverLeak finds what it looks for.
func TestLeakCheckFinds(t *testing.T) {
	pw := leakSecrets["PostgreSQL password"]
	for _, planted := range []string{
		"level=ERROR msg=\"open postgres://u:" + pw + "@db/ledger\"",
		`{"auth":"` + base64.StdEncoding.EncodeToString([]byte(pw)) + `"}`,
		`{"reason":"` + strings.ReplaceAll(pw, "-", `\u002d`) + `"}`,
	} {
		l := &leakCheck{seen: map[string][]byte{"planted": []byte(planted)}}
		if len(l.find()) == 0 {
			t.Errorf("the search misses the password in %s", planted)
		}
	}
}

// TestSecretsNeverLeak runs fraudpipe with every kind of secret set, from the environment
// and from files, against endpoints that fail, and searches every byte it wrote (standard
// output and error, decisions, dead letters, checkpoints, /metrics, API answers) and every
// request body it sent for the secrets' values: none may appear. Credentials sent where
// they belong (the Authorization header of the remote model, basic auth to OpenSearch) are
// the only exception, and are checked to be there.
func TestSecretsNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	leaks := &leakCheck{seen: map[string][]byte{}}

	// Secrets from files, as Docker and Kubernetes mount them, and from the environment.
	secretsDir := filepath.Join(dir, "run-secrets")
	os.Mkdir(secretsDir, 0o700)
	skip := map[string]bool{}
	secretFile := func(name, value string) string {
		p := filepath.Join(secretsDir, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		skip[p] = true
		return p
	}
	jwtFile := secretFile("jwt", leakSecrets["JWT HS256 key"])
	osFile := secretFile("opensearch", leakSecrets["OpenSearch password"])
	pgFile := secretFile("pg", leakSecrets["PostgreSQL password"])
	pgBadFile := secretFile("pg-bad", leakSecrets["PostgreSQL password that breaks its URL"])
	env := append(os.Environ(),
		"LEAK_WEBHOOK_SECRET="+leakSecrets["webhook secret"],
		"LEAK_AWS_SECRET="+leakSecrets["AWS secret access key"],
		"LEAK_MODEL_TOKEN="+leakSecrets["remote model token"],
		"AWS_EC2_METADATA_DISABLED=true",
	)

	// The failing endpoints.
	openSearch := &recorder{status: 401, body: `{"error":{"type":"security_exception","reason":"authentication failed"},"status":401}`}
	webhook := &recorder{status: 400, body: `{"error":"bad signature"}`}
	model := &recorder{status: 500, body: `{"error":"model server down"}`}
	for _, r := range []*recorder{openSearch, webhook, model} {
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		switch r {
		case openSearch:
			t.Setenv("LEAK_OS_URL", srv.URL)
		case webhook:
			t.Setenv("LEAK_HOOK_URL", srv.URL)
		case model:
			t.Setenv("LEAK_MODEL_URL", srv.URL)
		}
	}
	env = append(env, "LEAK_OS_URL="+os.Getenv("LEAK_OS_URL"), "LEAK_HOOK_URL="+os.Getenv("LEAK_HOOK_URL"), "LEAK_MODEL_URL="+os.Getenv("LEAK_MODEL_URL"))
	// An S3 server for the archive, and one that refuses every request for checkpoints.
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	createBucket(t, s3srv.URL, "archive")
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>`)
	}))
	t.Cleanup(denied.Close)

	apiAddr, adminAddr := freeAddr(t), freeAddr(t)
	s3Block := func(endpoint string) string {
		return fmt.Sprintf("{endpoint: %q, region: us-east-1, path_style: true, access_key_id: AKIDLEAKCHECK, secret_access_key: \"${LEAK_AWS_SECRET}\", sse: AES256}", endpoint)
	}
	base := fmt.Sprintf(`source:
  type: http
  http:
    listen: %q
    auth: {hs256_secret: "${file:%s}"}
scoring:
  model: {enabled: false}
  remote:
    enabled: true
    timeout: 2s
    breaker: {failures: 1000}
    http: {url: "${LEAK_MODEL_URL}", bearer_token: "${LEAK_MODEL_TOKEN}"}
output:
  decisions: {path: decisions.ndjson}
  dead_letters: {path: dead.ndjson}
  opensearch:
    - urls: ["${LEAK_OS_URL}"]
      username: fraudpipe
      password: "${file:%s}"
      required: false
      install_template: false
      dead_letters: opensearch.dead.ndjson
      batching: {count: 1, period: 10ms}
      retry: {max_retries: 1, backoff: {initial_interval: 10ms, max_interval: 10ms}}
  alerts:
    - url: "${LEAK_HOOK_URL}"
      secret: "${LEAK_WEBHOOK_SECRET}"
      on: [approve, review, decline]
      dead_letters: alerts.dead.ndjson
      batching: {count: 1, period: 10ms}
      retry: {max_retries: 1, backoff: {initial_interval: 10ms, max_interval: 10ms}}
  parquet:
    path: s3://archive/decisions
    roll_age: 1s
    s3: %s
admin: {listen: %q}
log: {level: debug}
`, apiAddr, jwtFile, osFile, s3Block(s3srv.URL), adminAddr)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		skip[p] = true
		return p
	}
	good := write("run.yaml", base+"ledger: {path: ledger.db, max_delay: 1ms}\ncheckpoint: {dir: ckpt, interval: 1s}\n")
	withPostgres := write("pg.yaml", base+fmt.Sprintf("ledger: {driver: postgres, url: \"postgres://fraudpipe:${file:%s}@127.0.0.1:1/ledger?connect_timeout=2\"}\ncheckpoint: {dir: ckpt-pg}\n", pgFile))
	withBadURL := write("pg-bad.yaml", base+fmt.Sprintf("ledger: {driver: postgres, url: \"postgres://fraudpipe:${file:%s}@127.0.0.1:1/ledger\"}\n", pgBadFile))
	withS3Checkpoints := write("s3ckpt.yaml", base+"ledger: {path: ledger-s3.db}\ncheckpoint:\n  dir: s3://checkpoints/prod\n  s3: "+s3Block(denied.URL)+"\n")
	// A config with problems on the very lines that hold secrets.
	bad := write("bad.yaml", fmt.Sprintf(`source:
  type: http
  http: {auth: {hs256_secret: "${LEAK_WEBHOOK_SECRET}"}}
output:
  opensearch:
    - {auth: sigv4, password: "${file:%s}"}
checkpoint:
  s3: {secret_access_key: "${LEAK_AWS_SECRET}", sse: aes256, sse_kms_key_id: "${LEAK_MODEL_TOKEN}"}
ledger: {driver: postgres, url: "postgres://fraudpipe:${file:%s}@db/ledger", batch_size: -1}
`, osFile, pgFile))

	// runCmd runs fraudpipe to its end and returns its standard output and error together.
	runCmd := func(name string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, dir
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		leaks.add(name+" stdout", out.Bytes())
		leaks.add(name+" stderr", errOut.Bytes())
		return out.String() + errOut.String(), err
	}
	if out, err := runCmd("lint", "lint", "--config", good); err != nil {
		t.Fatalf("lint of the good config: %v\n%s", err, out)
	}
	if out, err := runCmd("lint of a bad config", "lint", "--config", bad); err == nil || !strings.Contains(out, "hs256_secret") || !strings.Contains(out, "batch_size") {
		t.Errorf("lint of the bad config: %v\n%s", err, out)
	}
	for _, what := range []string{"docs", "example"} {
		runCmd("config "+what, "config", what)
	}
	// PostgreSQL unreachable: the run fails at once, saying where it could not connect.
	if out, err := runCmd("run with PostgreSQL down", "run", "--config", withPostgres); err == nil || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("run with an unreachable PostgreSQL: %v\n%s", err, out)
	}
	// A password that breaks the URL (an unescaped %): refused by the config check, which
	// cannot redact what does not parse and so never quotes it.
	for _, args := range [][]string{{"lint", "--config", withBadURL}, {"run", "--config", withBadURL}} {
		if out, err := runCmd(args[0]+" with an unparseable PostgreSQL URL", args...); err == nil || !strings.Contains(out, "ledger.url") {
			t.Errorf("%s with a PostgreSQL URL that does not parse: %v\n%s", args[0], err, out)
		}
	}
	// Checkpoints on an S3 that refuses the credentials.
	if out, err := runCmd("run with S3 checkpoints denied", "run", "--config", withS3Checkpoints); err == nil || !strings.Contains(out, "AccessDenied") {
		t.Errorf("run with S3 refusing the checkpoint store: %v\n%s", err, out)
	}

	// The main run: the decision API with JWT auth, every sink failing but the archive.
	cmd := exec.Command(bin, "run", "--config", good)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	token := hs256Token(leakSecrets["JWT HS256 key"], "leak-test", time.Now().Add(time.Hour))
	post := func(auth, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+apiAddr+"/v1/transactions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		leaks.add("API answer", b)
		return resp.StatusCode, string(b)
	}
	tx := func(i int) string {
		return fmt.Sprintf(`{"id":"leak-%d","ts":"2026-11-25T10:00:%02dZ","card_id":"c%d","account_id":"a%d","merchant_id":"m1","amount":"12.50","currency":"EUR"}`, i, i, i, i)
	}
	var code int
	var body string
	for deadline := time.Now().Add(time.Minute); ; {
		if code, body = post("Bearer "+token, tx(0)); code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval while the server starts
	}
	if code != 200 {
		t.Fatalf("POST with a valid token = %d %s\n%s", code, body, stderr.String())
	}
	for i := 1; i < 5; i++ {
		if code, body := post("Bearer "+token, tx(i)); code != 200 {
			t.Errorf("POST %d = %d %s", i, code, body)
		}
	}
	// Refused tokens: a wrong key, alg none, garbage, none at all.
	forged := hs256Token("not-the-key-not-the-key-not-the-key!", "mallory", time.Now().Add(time.Hour))
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(token, ".")[1] + "."
	for _, auth := range []string{"Bearer " + forged, "Bearer " + noneAlg, "Bearer x.y.z", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+leakSecrets["JWT HS256 key"])), ""} {
		if code, body := post(auth, tx(9)); code != 401 {
			t.Errorf("POST with %.30q = %d %s, want 401", auth, code, body)
		}
	}
	// Wait until every sink has failed and given up: OpenSearch and the webhook
	// dead-lettered the five decisions.
	deadLettered := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return bytes.Count(b, []byte("\n"))
	}
	for deadline := time.Now().Add(time.Minute); deadLettered("opensearch.dead.ndjson") < 5 || deadLettered("alerts.dead.ndjson") < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters after a minute: opensearch %d, alerts %d, want 5 each\n%s",
				deadLettered("opensearch.dead.ndjson"), deadLettered("alerts.dead.ndjson"), stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	leaks.add("/metrics", metrics)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("run: %v\n%s", err, stderr.String())
	}
	leaks.add("run stdout", []byte(stdout.String()))
	leaks.add("run stderr", []byte(stderr.String()))
	leaks.addFiles(t, dir, skip)
	if len(lines(t, filepath.Join(dir, "decisions.ndjson"))) != 5 {
		t.Errorf("decisions: want 5")
	}

	// What was sent: the secrets may appear only where they are credentials.
	openSearch.mu.Lock()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("fraudpipe:"+leakSecrets["OpenSearch password"]))
	for i, r := range openSearch.reqs {
		if !strings.Contains(r, "Authorization: "+basic) {
			t.Errorf("OpenSearch request %d lacks the basic auth header", i)
		}
		leaks.add(fmt.Sprintf("OpenSearch request %d (without its Authorization header)", i), []byte(strings.ReplaceAll(r, basic, "")))
	}
	openSearch.mu.Unlock()
	model.mu.Lock()
	for i, r := range model.reqs {
		bearer := "Bearer " + leakSecrets["remote model token"]
		if !strings.Contains(r, "Authorization: "+bearer) {
			t.Errorf("model request %d lacks the bearer token", i)
		}
		leaks.add(fmt.Sprintf("model request %d (without its Authorization header)", i), []byte(strings.ReplaceAll(r, bearer, "")))
	}
	model.mu.Unlock()
	webhook.mu.Lock()
	for i, r := range webhook.reqs {
		leaks.add(fmt.Sprintf("webhook request %d", i), []byte(r))
	}
	webhook.mu.Unlock()
	if openSearch.count() == 0 || webhook.count() == 0 || model.count() == 0 {
		t.Errorf("requests: opensearch %d, webhook %d, model %d; each endpoint should have been tried", openSearch.count(), webhook.count(), model.count())
	}
	leaks.check(t)
	for _, want := range []string{"run stderr", "/metrics", "lint of a bad config stdout", "run with PostgreSQL down stderr", "file opensearch.dead.ndjson", "file alerts.dead.ndjson"} {
		if len(leaks.seen[want]) == 0 {
			t.Errorf("nothing collected from %s: the search would prove nothing there", want)
		}
	}
}

// createBucket makes a bucket on the S3 server at endpoint.
func createBucket(t *testing.T, endpoint, bucket string) *s3.Client {
	t.Helper()
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestParquetServerSideEncryption writes a small object (one PutObject) and a large one (a
// multipart upload) to the archive with each encryption and checks the header on the
// requests that create objects, and on the stored objects.
func TestParquetServerSideEncryption(t *testing.T) {
	for _, tt := range []struct{ sse, key string }{{"", ""}, {"AES256", ""}, {"aws:kms", "arn:aws:kms:eu-west-1:111122223333:key/test"}} {
		t.Run("sse="+tt.sse, func(t *testing.T) {
			var mu sync.Mutex
			creates := map[string][2]string{} // request -> encryption headers
			fake := gofakes3.New(s3mem.New()).Server()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				_, uploads := q["uploads"]
				if r.Method == http.MethodPut && !q.Has("uploadId") || r.Method == http.MethodPost && uploads {
					mu.Lock()
					creates[r.Method+" "+r.URL.Path] = [2]string{r.Header.Get("X-Amz-Server-Side-Encryption"), r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")}
					mu.Unlock()
				}
				fake.ServeHTTP(w, r)
			}))
			defer srv.Close()
			client := createBucket(t, srv.URL, "archive")
			delete(creates, "PUT /archive")
			pc := config.Default().Output.Parquet
			pc.PartSizeMB = 5
			pc.S3 = config.S3{Endpoint: srv.URL, Region: "us-east-1", PathStyle: true, AccessKeyID: "test", SecretAccessKey: "test",
				SSE: tt.sse, SSEKMSKeyID: tt.key}
			ctx := context.Background()
			dest, err := parquet.OpenDestination(ctx, "s3://archive/decisions", parquetS3Options(pc))
			if err != nil {
				t.Fatal(err)
			}
			for key, size := range map[string]int{"small.parquet": 1000, "large.parquet": 6 << 20} {
				w, err := dest.Create(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(bytes.Repeat([]byte{'p'}, size)); err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("archive"), Key: aws.String("decisions/" + key)})
				if err != nil {
					t.Fatal(err)
				}
				if string(head.ServerSideEncryption) != tt.sse || aws.ToString(head.SSEKMSKeyId) != tt.key {
					t.Errorf("%s stored with encryption %q key %q, want %q %q", key, head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), tt.sse, tt.key)
				}
			}
			want := map[string][2]string{
				"PUT /archive/decisions/small.parquet":  {tt.sse, tt.key}, // PutObject
				"POST /archive/decisions/large.parquet": {tt.sse, tt.key}, // CreateMultipartUpload
			}
			if fmt.Sprint(creates) != fmt.Sprint(want) {
				t.Errorf("object-creating requests and their encryption headers:\n%v\nwant\n%v", creates, want)
			}
		})
	}
}

// TestOpenSearchAuth checks the requests of each output.opensearch auth: SigV4 signs for
// the configured region and service with credentials from the AWS chain (here the
// environment), basic sends the password, none sends nothing.
func TestOpenSearchAuth(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSIGV4TEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "sigv4-test-secret-key")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var mu sync.Mutex
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"took":1,"errors":false,"items":[{"index":{"_id":"a","status":201}}]}`)
	}))
	defer srv.Close()
	send := func(oc config.OpenSearchOutput) (http.Header, error) {
		ocfg := opensearch.Config{URLs: []string{srv.URL}}
		if err := openSearchAuth(&ocfg, oc, "output.opensearch[0]"); err != nil {
			return nil, err
		}
		w, err := opensearch.New(ocfg)
		if err != nil {
			return nil, err
		}
		defer w.Close(context.Background())
		if _, err := w.Write(context.Background(), []*pipeline.Event{sinktest.Event(0, "a", "A", false)}); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		return got, nil
	}
	h, err := send(config.OpenSearchOutput{Auth: "sigv4", AWSRegion: "eu-west-1", Service: "es"})
	if err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().Format("20060102")
	auth := h.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDSIGV4TEST/") || !strings.Contains(auth, "/eu-west-1/es/aws4_request") ||
		!strings.Contains(auth, "SignedHeaders=") || !strings.Contains(auth, "Signature=") {
		t.Errorf("sigv4 Authorization = %q", auth)
	}
	if d := h.Get("X-Amz-Date"); !strings.HasPrefix(d, date) && !strings.HasPrefix(d, time.Now().UTC().Add(-time.Minute).Format("20060102")) {
		t.Errorf("X-Amz-Date = %q", d)
	}
	if h.Get("X-Amz-Content-Sha256") == "" {
		t.Error("no X-Amz-Content-Sha256")
	}
	if strings.Contains(fmt.Sprint(h), "sigv4-test-secret-key") {
		t.Error("the secret key is in the request headers")
	}
	if h, err = send(config.OpenSearchOutput{Auth: "sigv4", AWSRegion: "us-east-2", Service: "aoss"}); err != nil || !strings.Contains(h.Get("Authorization"), "/us-east-2/aoss/aws4_request") {
		t.Errorf("aoss: %v %q", err, h.Get("Authorization"))
	}
	if h, err = send(config.OpenSearchOutput{Username: "analyst", Password: "pw"}); err != nil || h.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("analyst:pw")) {
		t.Errorf("basic: %v %q", err, h.Get("Authorization"))
	}
	if h, err = send(config.OpenSearchOutput{}); err != nil || h.Get("Authorization") != "" {
		t.Errorf("none: %v %q", err, h.Get("Authorization"))
	}
	if _, err := send(config.OpenSearchOutput{Auth: "sigv4", Service: "es"}); err == nil || !strings.Contains(err.Error(), "output.opensearch[0].aws_region") {
		t.Errorf("sigv4 without a region: %v", err)
	}
}

// TestSecretsNeverInConfigText checks that a loaded config printed with %v or %+v, as a
// careless log line would, shows none of its secrets.
func TestSecretsNeverInConfigText(t *testing.T) {
	c := config.Default()
	c.Output.OpenSearch = []config.OpenSearchOutput{{Password: config.Secret(leakSecrets["OpenSearch password"])}}
	c.Output.Alerts = []config.AlertOutput{{Secret: config.Secret(leakSecrets["webhook secret"])}}
	c.Source.HTTP.Auth.HS256Secret = config.Secret(leakSecrets["JWT HS256 key"])
	c.Checkpoint.S3.SecretAccessKey = config.Secret(leakSecrets["AWS secret access key"])
	c.Scoring.Remote.HTTP.BearerToken = config.Secret(leakSecrets["remote model token"])
	b, _ := json.Marshal(c.Source.HTTP.Auth)
	l := &leakCheck{seen: map[string][]byte{"%v": fmt.Appendf(nil, "%v", *c), "%+v": fmt.Appendf(nil, "%+v", *c), "json of source.http.auth": b}}
	l.check(t)
}
