package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Scale configures scale-out: several fraudpipe instances sharing one partitioned stream.
type Scale struct {
	Instance string `yaml:"instance" doc:"This instance among the instances sharing the stream, as i/N (0 ≤ i < N), e.g. 1/3 or ${INSTANCE}; empty: a single instance owning everything. Instance i reads the stream partitions p with p mod N = i (source.nats.partitions must be set), checkpoints each partition's state under checkpoint.dir/instance-<i>, and on start takes each partition it owns from whichever instance's checkpoint covers it furthest, so changing N moves partitions and their state. Every instance needs the same partitions and checkpoint.dir (shared: S3 or a shared folder), and the ledger is sharded by stream partition ({partition} in ledger.path or ledger.url)."`
}

// ParseInstance reads "i/N". It returns 0, 0 for "".
func ParseInstance(s string) (i, n int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("instance %q: write i/N, e.g. 0/3 for the first of three", s)
	}
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("instance %q: write i/N with N ≥ 1 and 0 ≤ i < N, e.g. 0/3 for the first of three", s)
	}
	return i, n, nil
}

// OwnedPartitions lists the stream partitions p of 0..partitions-1 that instance i of n
// owns: those with p mod n = i.
func OwnedPartitions(i, n, partitions int) []int {
	var out []int
	for p := i; p < partitions; p += n {
		out = append(out, p)
	}
	return out
}

// scale checks the scale block against the rest.
func (v *validator) scale(c *Config) {
	if c.Scale.Instance == "" {
		return
	}
	i, n, err := ParseInstance(c.Scale.Instance)
	if err != nil {
		v.add("scale.instance", "%s", strings.TrimPrefix(err.Error(), "instance "))
		return
	}
	if c.Source.Type != "nats" {
		v.add("scale.instance", "instances share a partitioned NATS stream: set source.type to nats with source.nats.partitions, got source.type %s", c.Source.Type)
		return
	}
	p := c.Source.NATS.Partitions
	if p <= 0 {
		v.add("scale.instance", "instances share the stream by its partitions: set source.nats.partitions (e.g. 64), fixed for the deployment")
		return
	}
	if n > p {
		v.add("scale.instance", "%d instances for %d stream partitions: instance %d would own none; use at most %d instances or more partitions", n, p, i, p)
	}
	if !c.Checkpoint.Enabled {
		v.add("scale.instance", "instances hand partitions over through their checkpoints: set checkpoint.enabled to true and checkpoint.dir to a store every instance reaches")
	}
	if n > 1 && c.Source.NATS.URL == "" {
		v.add("scale.instance", "instances share one NATS server or cluster: set source.nats.url (the embedded server belongs to a single process)")
	}
	switch l := c.Ledger; l.Driver {
	case "sqlite":
		if !strings.Contains(l.Path, "{partition}") {
			v.add("ledger.path", "a scaled-out ledger has a shard per stream partition, which moves with the partition: put {partition} in the path, e.g. /shared/ledger/p-{partition}.db, on storage every instance reaches")
		}
	case "postgres":
		if !strings.Contains(l.URL, "{partition}") {
			v.add("ledger.url", "a scaled-out ledger has a shard per stream partition, which moves with the partition: put {partition} in the URL, e.g. ...?search_path=ledger_p{partition} (the schema is created when missing)")
		}
	}
	if c.Ledger.Driver != "none" && c.Ledger.AccountsFile != "" {
		v.add("ledger.accounts_file", "is not applied to a ledger sharded by stream partition (each shard would post the opening balances again): load accounts into each shard with the fraudpipe ledger commands")
	}
}
