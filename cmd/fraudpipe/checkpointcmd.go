package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

func cmdCheckpoint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("checkpoint", "inspect PATH",
		`Shows a checkpoint: its manifest (id, time, partitions, the next sequence number, the
watermark, the source) and each file with its size, after checking every checksum. PATH
is one checkpoint folder (chk-...) or a checkpoint.dir, whose newest complete checkpoint is
shown. Exits 1 when the checkpoint is incomplete or damaged.`, stdout)
	if err := fs.parseWithArgs(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "inspect" {
		return &usageError{"say 'checkpoint inspect PATH'"}
	}
	path := fs.Arg(1)
	var c *pipeline.Checkpoint
	var err error
	if _, statErr := os.Stat(filepath.Join(path, "MANIFEST.json")); statErr == nil {
		c, err = pipeline.LoadCheckpointDir(path)
	} else {
		if _, statErr := os.Stat(path); statErr != nil {
			return fmt.Errorf("checkpoint: %w", statErr)
		}
		var store *pipeline.DirStore
		if store, err = pipeline.NewDirStore(path); err == nil {
			c, err = store.Latest(context.Background())
		}
	}
	if err != nil {
		return err
	}
	out := struct {
		Location string `json:"location"`
		pipeline.Manifest
	}{c.Location, c.Manifest}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	names := make([]string, 0, len(c.Files))
	var total int
	for n, data := range c.Files {
		names = append(names, n)
		total += len(data)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "%-24s %12d bytes  ok\n", n, len(c.Files[n]))
	}
	fmt.Fprintf(stdout, "%-24s %12d bytes\n", "total", total)
	return nil
}
