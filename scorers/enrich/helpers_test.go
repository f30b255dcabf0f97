package enrich

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile writes content to a new file and renames it over path, as a deploy tool would.
func replaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// ms reads an RFC 3339 time as Unix milliseconds.
func ms(t testing.TB, s string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixMilli()
}

// rig is one factory and the scorer of its partition 0.
type rig struct {
	f      *Factory
	s      *Scorer
	schema *pipeline.FeatureSchema
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	schema := pipeline.NewFeatureSchema()
	f, err := New(cfg, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := f.NewScorer(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return &rig{f: f, s: sc.(*Scorer), schema: schema}
}

// score runs one transaction and returns the features by name.
func (r *rig) score(tx pipeline.Transaction, late bool) map[string]float64 {
	e := &pipeline.Eval{Tx: &tx, Features: make([]float64, r.schema.Len()), Late: late}
	r.s.Score(e)
	out := make(map[string]float64, len(e.Features))
	for i, n := range r.schema.Names() {
		out[n] = e.Features[i]
	}
	return out
}

// Places used across the tests, in degrees.
var (
	paris  = [2]float64{48.8566, 2.3522}
	london = [2]float64{51.5074, -0.1278}
	berlin = [2]float64{52.5200, 13.4050}
)

func at(p [2]float64) func(*pipeline.Transaction) {
	return func(tx *pipeline.Transaction) { tx.Lat, tx.Lon, tx.HasGeo = p[0], p[1], true }
}

// txn builds a transaction of card at ts, changed by opts.
func txn(t testing.TB, card, ts string, opts ...func(*pipeline.Transaction)) pipeline.Transaction {
	tx := pipeline.Transaction{ID: card + "@" + ts, TSText: ts, TS: ms(t, ts), CardID: card, AccountID: "a-" + card,
		MerchantID: "m-none", Amount: 1000, Currency: pipeline.Currency{Code: "EUR", Digits: 2}}
	for _, o := range opts {
		o(&tx)
	}
	return tx
}

func country(c string) func(*pipeline.Transaction) {
	return func(tx *pipeline.Transaction) { tx.Country = c }
}

func device(d string) func(*pipeline.Transaction) {
	return func(tx *pipeline.Transaction) { tx.DeviceID = d }
}

func ip(a string) func(*pipeline.Transaction) { return func(tx *pipeline.Transaction) { tx.IP = a } }

func merchantID(m string) func(*pipeline.Transaction) {
	return func(tx *pipeline.Transaction) { tx.MerchantID = m }
}

func customerID(c string) func(*pipeline.Transaction) {
	return func(tx *pipeline.Transaction) { tx.CustomerID = c }
}
