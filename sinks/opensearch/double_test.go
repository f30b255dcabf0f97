package opensearch

import (
	"testing"

	"github.com/fraudpipe/fraudpipe/sinks/opensearch/osdouble"
)

// double is the OpenSearch HTTP double (package osdouble) with this package's strict
// mapping applied to documents.
type double = osdouble.Double

func newDouble(t testing.TB) *double {
	d, err := osdouble.New(osdouble.Options{Mappings: Mappings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// allowed are the top-level fields of the strict mapping (Mappings).
var allowed = func() map[string]bool {
	m := map[string]bool{}
	for k := range Mappings()["properties"].(map[string]any) {
		m[k] = true
	}
	return m
}()
