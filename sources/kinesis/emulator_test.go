package kinesis

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// emulator is a kinesalite server started by scripts/kinesalite for one test.
type emulator struct {
	endpoint string
	client   *kinesis.Client
}

// lockedBuffer collects the emulator's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEmulator runs kinesalite on a free loopback port until the test ends.
func startEmulator(tb testing.TB) *emulator {
	tb.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Fatalf("the kinesis tests run the kinesalite emulator, which needs Node.js and npm: %s is not installed. Install Node.js and npm (Debian: apt-get install nodejs npm), then run scripts/kinesalite install", tool)
		}
	}
	script, err := filepath.Abs("../../scripts/kinesalite")
	if err != nil {
		tb.Fatal(err)
	}
	port := freePort(tb)
	cmd := exec.Command(script, "start", strconv.Itoa(port))
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // npm, when installing, runs children
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v (run scripts/kinesalite install first)", script, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if tb.Failed() {
			tb.Logf("kinesalite's output:\n%s", out.String())
		}
	})
	e := &emulator{endpoint: fmt.Sprintf("http://127.0.0.1:%d", port)}
	client, err := NewClient(context.Background(), "us-east-1", e.endpoint, "test", "test", "")
	if err != nil {
		tb.Fatal(err)
	}
	e.client = client
	// Installing takes seconds (npm), starting well under one.
	deadline := time.Now().Add(120 * time.Second)
	for {
		var err error
		// Dial first: the client would back off between its own retries of a refused
		// connection.
		if c, derr := net.DialTimeout("tcp", e.endpoint[len("http://"):], time.Second); derr != nil {
			err = derr
		} else {
			c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = client.ListStreams(ctx, &kinesis.ListStreamsInput{})
			cancel()
			if err == nil {
				return e
			}
		}
		select {
		case werr := <-exited:
			tb.Fatalf("kinesalite exited (%v) before answering; run scripts/kinesalite install and check its output:\n%s", werr, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kinesalite did not answer ListStreams on %s within 120s: %v\n%s", e.endpoint, err, out.String())
		}
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// createStream creates a stream of n shards and waits until it is active.
func (e *emulator) createStream(tb testing.TB, name string, n int32) {
	tb.Helper()
	ctx := context.Background()
	if _, err := e.client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(n)}); err != nil {
		tb.Fatalf("create stream %s: %v", name, err)
	}
	e.waitActive(tb, name)
}

// waitActive polls until the stream is ACTIVE (after a create, split or merge).
func (e *emulator) waitActive(tb testing.TB, name string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := e.client.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("stream %s not active after 20s: %v", name, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// shards lists the stream's shards.
func (e *emulator) shards(tb testing.TB, name string) []types.Shard {
	tb.Helper()
	out, err := e.client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		tb.Fatal(err)
	}
	return out.Shards
}

// split splits a shard in the middle of its hash key range.
func (e *emulator) split(tb testing.TB, name, shardID string) {
	tb.Helper()
	var sh *types.Shard
	for _, s := range e.shards(tb, name) {
		if aws.ToString(s.ShardId) == shardID {
			sh = &s
		}
	}
	if sh == nil {
		tb.Fatalf("no shard %s in %s", shardID, name)
	}
	lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	_, err := e.client.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String(name), ShardToSplit: aws.String(shardID), NewStartingHashKey: aws.String(mid.String()),
	})
	if err != nil {
		tb.Fatalf("split %s: %v", shardID, err)
	}
	e.waitActive(tb, name)
}

// merge merges two adjacent shards.
func (e *emulator) merge(tb testing.TB, name, a, b string) {
	tb.Helper()
	_, err := e.client.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: aws.String(name), ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b),
	})
	if err != nil {
		tb.Fatalf("merge %s %s: %v", a, b, err)
	}
	e.waitActive(tb, name)
}

// faultyAPI wraps a client and injects errors.
type faultyAPI struct {
	API
	mu sync.Mutex
	// getRecords, when set, may return an error instead of calling GetRecords; call counts
	// from 1.
	getRecords func(call int) error
	// getIterator likewise for GetShardIterator.
	getIterator func(call int, in *kinesis.GetShardIteratorInput) error

	recordsCalls, iterCalls int
	iterByType              map[types.ShardIteratorType]int
	injected                int
	inFlight                int
}

func (f *faultyAPI) enter() func() {
	f.mu.Lock()
	f.inFlight++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}
}

func (f *faultyAPI) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	defer f.enter()()
	f.mu.Lock()
	f.recordsCalls++
	call := f.recordsCalls
	var err error
	if f.getRecords != nil {
		err = f.getRecords(call)
	}
	if err != nil {
		f.injected++
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.API.GetRecords(ctx, in, opts...)
}

func (f *faultyAPI) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	defer f.enter()()
	f.mu.Lock()
	f.iterCalls++
	call := f.iterCalls
	var err error
	if f.getIterator != nil {
		err = f.getIterator(call, in)
	}
	if err != nil {
		f.injected++
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out, err := f.API.GetShardIterator(ctx, in, opts...)
	if err == nil { // counted once the server made it
		f.mu.Lock()
		if f.iterByType == nil {
			f.iterByType = map[types.ShardIteratorType]int{}
		}
		f.iterByType[in.ShardIteratorType]++
		f.mu.Unlock()
	}
	return out, err
}

func (f *faultyAPI) ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	defer f.enter()()
	return f.API.ListShards(ctx, in, opts...)
}

func (f *faultyAPI) stats() (injected, inFlight int, byType map[types.ShardIteratorType]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	byType = map[types.ShardIteratorType]int{}
	for k, v := range f.iterByType {
		byType[k] = v
	}
	return f.injected, f.inFlight, byType
}
