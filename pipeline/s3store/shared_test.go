package s3store

import (
	"context"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// TestSubStores: instances sharing a store write under prefix/instance-<i>/, list each
// other's stores, and never see the parent's own checkpoints as stores.
func TestSubStores(t *testing.T) {
	ctx := context.Background()
	root := newStore(t)
	if err := root.Write(ctx, pipeline.Manifest{ID: 1}, map[string][]byte{"source.pos": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sub, err := root.Sub(pipeline.InstanceStoreName(i))
		if err != nil {
			t.Fatal(err)
		}
		m := pipeline.Manifest{ID: uint64(10 + i), Instance: pipeline.InstanceStoreName(i), Groups: map[int]uint64{i: uint64(100 * i)}}
		if err := sub.Write(ctx, m, map[string][]byte{"source.pos": []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	names, err := root.Subs(ctx)
	if err != nil || strings.Join(names, ",") != "instance-0,instance-1,instance-2" {
		t.Fatalf("subs %v (%v)", names, err)
	}
	sub, _ := root.Sub("instance-2")
	c, err := sub.Latest(ctx)
	if err != nil || c.Manifest.ID != 12 || c.Manifest.Groups[2] != 200 || !strings.HasPrefix(c.Location, "s3://checkpoints/prod/eu-1/instance-2/chk-") {
		t.Fatalf("instance-2's latest: %+v %v", c, err)
	}
	if c, err := root.Latest(ctx); err != nil || c.Manifest.ID != 1 {
		t.Fatalf("the root's own checkpoint: %v", err)
	}
	if _, err := root.Sub("a/b"); err == nil {
		t.Error("a name with a slash was accepted")
	}
}
