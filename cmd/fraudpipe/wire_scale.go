package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraudpipe/fraudpipe/ledger"
	"github.com/fraudpipe/fraudpipe/pipeline"
	"github.com/fraudpipe/fraudpipe/pipeline/config"
)

// scaleOut is this instance's share of a scaled-out deployment (scale.instance).
type scaleOut struct {
	instance, instances int
	partitions          []int // the stream partitions it owns
}

// scaleOf reads scale.instance; nil when the config runs a single instance.
func scaleOf(cfg *config.Config) (*scaleOut, error) {
	i, n, err := config.ParseInstance(cfg.Scale.Instance)
	if err != nil || n == 0 {
		return nil, err
	}
	return &scaleOut{instance: i, instances: n, partitions: config.OwnedPartitions(i, n, cfg.Source.NATS.Partitions)}, nil
}

func (s *scaleOut) String() string { return fmt.Sprintf("%d/%d", s.instance, s.instances) }

// instanceStores splits the shared checkpoint store root: this instance's own store
// (root/instance-<i>) and every other instance's, found by listing root, to take
// partitions over from.
func instanceStores(ctx context.Context, root pipeline.CheckpointStore, s *scaleOut) (own pipeline.CheckpointStore, peers []pipeline.CheckpointStore, err error) {
	shared, ok := root.(pipeline.SharedStore)
	if !ok {
		return nil, nil, fmt.Errorf("checkpoint store %s cannot be shared between instances: use a folder or s3://bucket/prefix", root)
	}
	ownName := pipeline.InstanceStoreName(s.instance)
	if own, err = shared.Sub(ownName); err != nil {
		return nil, nil, err
	}
	names, err := shared.Subs(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		if name == ownName || !strings.HasPrefix(name, "instance-") {
			continue
		}
		p, err := shared.Sub(name)
		if err != nil {
			return nil, nil, err
		}
		peers = append(peers, p)
	}
	return own, peers, nil
}

// partitionPlaceholder in ledger.path or ledger.url is replaced by a stream partition's
// number: a scaled-out deployment keeps one ledger shard per stream partition.
const partitionPlaceholder = "{partition}"

// openShardedLedger opens the ledger shard of every stream partition this instance owns.
func openShardedLedger(cfg *config.Config, s *scaleOut) (_ pipeline.Ledger, err error) {
	l := &shardedLedger{shards: make(map[int]ledger.Store, len(s.partitions))}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, p := range s.partitions {
		var target ledgerTarget
		num := fmt.Sprintf("%03d", p)
		switch cfg.Ledger.Driver {
		case "sqlite":
			target.path = cfg.Resolve(strings.ReplaceAll(cfg.Ledger.Path, partitionPlaceholder, num))
			if err := os.MkdirAll(filepath.Dir(target.path), 0o755); err != nil {
				return nil, fmt.Errorf("ledger shard of partition %d: %w", p, err)
			}
		case "postgres":
			target.url = strings.ReplaceAll(cfg.Ledger.URL, partitionPlaceholder, num)
			if err := ensurePostgresSchema(target.url); err != nil {
				return nil, fmt.Errorf("ledger shard of partition %d: %w", p, err)
			}
		}
		st, err := openLedgerStore(cfg, target, false)
		if err != nil {
			return nil, fmt.Errorf("ledger shard of partition %d: %w", p, err)
		}
		l.shards[p] = st
	}
	return l, nil
}

// ensurePostgresSchema creates the schema a PostgreSQL URL's search_path names, when it
// names one and it is missing.
func ensurePostgresSchema(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("ledger.url: %w", redactErr(err))
	}
	schema := u.Query().Get("search_path")
	if schema == "" || strings.ContainsAny(schema, ", ") {
		return nil
	}
	base := *u
	q := base.Query()
	q.Del("search_path")
	base.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, base.String())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", u.Redacted(), redactErr(err))
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// redactErr keeps an error that may quote a URL from showing its password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Op + ": " + ue.Err.Error())
	}
	return err
}

// shardedLedger posts each request in the shard of its stream partition. Shards commit
// independently, each idempotent by transaction id, so a batch half-posted by a crash is
// completed by the replay from the checkpoint.
type shardedLedger struct {
	shards map[int]ledger.Store
}

var _ pipeline.Ledger = (*shardedLedger)(nil)

// Post posts every request in its partition's shard, the shards in parallel.
func (l *shardedLedger) Post(ctx context.Context, reqs []pipeline.PostRequest) error {
	byShard := map[int][]int{}
	for i := range reqs {
		p := reqs[i].Partition
		if _, ok := l.shards[p]; !ok {
			return fmt.Errorf("ledger: transaction %s is of stream partition %d, which this instance does not own", reqs[i].TxID, p)
		}
		byShard[p] = append(byShard[p], i)
	}
	var wg sync.WaitGroup
	errs := make([]error, 0, len(byShard))
	var mu sync.Mutex
	for p, idx := range byShard {
		wg.Go(func() {
			part := make([]pipeline.PostRequest, len(idx))
			for k, i := range idx {
				part[k] = reqs[i]
			}
			err := l.shards[p].Post(ctx, part)
			if err == nil {
				for k, i := range idx {
					reqs[i].Status, reqs[i].Reason = part[k].Status, part[k].Reason
				}
				return
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("ledger shard of partition %d: %w", p, err))
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Reverse reverses txID in the shard that posted it.
func (l *shardedLedger) Reverse(ctx context.Context, txID string, ts int64) (ledger.Reversal, error) {
	for _, st := range l.shards {
		r, err := st.Reverse(ctx, txID, ts)
		if errors.Is(err, ledger.ErrEntryNotFound) {
			continue
		}
		return r, err
	}
	return ledger.Reversal{}, fmt.Errorf("reverse %s: %w", txID, ledger.ErrEntryNotFound)
}

// Close closes every shard.
func (l *shardedLedger) Close() error {
	var errs []error
	for _, st := range l.shards {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
