package enrich

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

const customersCSV = `customer_id,home_lat,home_lon,home_country
# a comment line
cu-paris,48.8566,2.3522,FR
cu-nohome,,,de
cu-nocountry,51.5074,-0.1278,
`

const customersNDJSON = `{"customer_id":"cu-paris","home_lat":48.8566,"home_lon":"2.3522","home_country":"FR"}

{"customer_id":"cu-nohome","home_lat":null,"home_country":"de"}
{"customer_id":"cu-nocountry","home_lat":51.5074,"home_lon":-0.1278,"extra":[1,2]}
`

// writeCustomersParquet writes the rows of customersCSV as a Parquet file, with numbers as
// doubles and nulls for the unknown values.
func writeCustomersParquet(t testing.TB, path string) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "customer_id", Type: arrow.BinaryTypes.String},
		{Name: "home_lat", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "home_lon", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "home_country", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "segment", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"cu-paris", "cu-nohome", "cu-nocountry"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{48.8566, 0, 51.5074}, []bool{true, false, true})
	b.Field(2).(*array.Float64Builder).AppendValues([]float64{2.3522, 0, -0.1278}, []bool{true, false, true})
	b.Field(3).(*array.StringBuilder).AppendValues([]string{"FR", "de", ""}, []bool{true, true, false})
	b.Field(4).(*array.Int32Builder).AppendValues([]int32{1, 2, 3}, nil)
	rec := b.NewRecord()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.Record{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 2, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCustomersInEveryFormat(t *testing.T) {
	dir := t.TempDir()
	pq := filepath.Join(dir, "customers.parquet")
	writeCustomersParquet(t, pq)
	for _, p := range []string{
		writeFile(t, dir, "customers.csv", customersCSV),
		writeFile(t, dir, "customers.ndjson", customersNDJSON),
		pq,
	} {
		c, n, err := loadCustomers(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if n != 3 {
			t.Errorf("%s: %d customers, want 3", filepath.Base(p), n)
		}
		fr, _ := countryCode("FR")
		de, _ := countryCode("DE")
		paris := c.rows["cu-paris"]
		if !paris.hasHome || paris.country != fr || math.Abs(distance(paris.home, newPoint(48.8566, 2.3522))) > 1e-9 {
			t.Errorf("%s: cu-paris = %+v", filepath.Base(p), paris)
		}
		if nh := c.rows["cu-nohome"]; nh.hasHome || nh.country != de {
			t.Errorf("%s: cu-nohome = %+v, want no home, country DE", filepath.Base(p), nh)
		}
		if nc := c.rows["cu-nocountry"]; !nc.hasHome || nc.country != 0 {
			t.Errorf("%s: cu-nocountry = %+v, want a home and no country", filepath.Base(p), nc)
		}
	}
}

func TestMerchantsAndCountries(t *testing.T) {
	dir := t.TempDir()
	m, n, err := loadMerchants(writeFile(t, dir, "merchants.csv", "merchant_id,country,mcc,risk,name\nm-1,FR,5411,0.2,Grocer\nm-2,,,,Unknown\nm-3,DE,5999,1,Bazaar\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || m.rows["m-1"].risk != 0.2 || m.rows["m-2"].risk != 0 || m.rows["m-3"].risk != 1 {
		t.Errorf("merchants %+v", m.rows)
	}
	c, n, err := loadCountries(writeFile(t, dir, "countries.ndjson", `{"country":"fr","risk":0.1}`+"\n"+`{"country":"NG","risk":"0.8"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ng, _ := countryCode("NG")
	fr, _ := countryCode("FR")
	if n != 2 || c.risk[countryIndex(ng)] != 0.8 || c.risk[countryIndex(fr)] != 0.1 {
		t.Errorf("countries %v", c.risk)
	}
}

func TestBadRowsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	type loader func(string) error
	customers := func(p string) error { _, _, err := loadCustomers(p); return err }
	merchants := func(p string) error { _, _, err := loadMerchants(p); return err }
	countries := func(p string) error { _, _, err := loadCountries(p); return err }
	for _, c := range []struct {
		name, content string
		load          loader
		want          string
	}{
		{"c1.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48,2,FR\ncu-2,95,2,FR\n", customers, `c1.csv:3: home_lat "95" is not a number in [-90, 90]`},
		{"c2.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48,,FR\n", customers, "c2.csv:2: customer \"cu-1\" has only one of home_lat and home_lon"},
		{"c3.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48,2,FRA\n", customers, `c3.csv:2: home_country "FRA" is not an ISO 3166-1 alpha-2 code`},
		{"c4.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48,2,FR\n\ncu-1,48,2,FR\n", customers, `c4.csv:4: customer_id "cu-1" appears twice (first at`},
		{"c5.csv", "customer_id,home_lat,home_country\ncu-1,48,FR\n", customers, `c5.csv: no column "home_lon"`},
		{"c6.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48,2\n", customers, "c6.csv:2: wrong number of fields"},
		{"c7.csv", "customer_id,home_lat,home_lon,home_country\n,48,2,FR\n", customers, "c7.csv:2: empty customer_id"},
		{"c8.csv", "", customers, "c8.csv: empty file"},
		{"c9.ndjson", `{"customer_id":"a"}` + "\n" + `{"customer_id":true}` + "\n", customers, `c9.ndjson:2: field "customer_id": true is not a string or a number`},
		{"m1.csv", "merchant_id,country,mcc,risk\nm-1,FR,5411,1.5\n", merchants, `m1.csv:2: risk "1.5" is not a number in [0, 1]`},
		{"m2.csv", "merchant_id,country,mcc,risk\nm-1,FR,54x1,0.5\n", merchants, `m2.csv:2: mcc "54x1" is not a 4-digit`},
		{"k1.csv", "country,risk\nFR,0.1\nfr,0.2\n", countries, `k1.csv:3: country "FR" appears twice`},
		{"k2.csv", "country,risk\nFR,NaN\n", countries, `k2.csv:2: risk "NaN" is not a number in [0, 1]`},
		{"k3.txt", "FR,0.1\n", countries, "k3.txt: unknown reference file format"},
		{"k4.parquet", "not parquet at all", countries, "k4.parquet: not a readable Parquet file"},
	} {
		err := c.load(writeFile(t, dir, c.name, c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "countries.csv", "country,risk\nFR,0.1\n")
	bad := writeFile(t, dir, "merchants.csv", "merchant_id,country,mcc,risk\nm-1,FR,5411,2\n")
	missing := filepath.Join(dir, "absent.txt")
	for _, c := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Countries: good, Deny: ListFiles{Cards: missing}}, []string{"deny.cards file", "absent.txt"}},
		{Config{Merchants: bad, Customers: missing}, []string{"customers file", "merchants file: ", "merchants.csv:2: risk"}},
		{Config{Allow: ListFiles{IPs: good}}, []string{"allow list of IPs", "not supported"}},
		{Config{ReloadEvery: -1}, []string{"reload interval"}},
		{Config{TTL: -1}, []string{"TTL"}},
		{Config{MaxCards: -1}, []string{"max cards"}},
	} {
		_, err := New(c.cfg, pipeline.NewFeatureSchema(), nil)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want one containing %q", c.cfg, err, w)
			}
		}
	}
	// The features are declared once: a second scorer declaring one of them is refused.
	schema := pipeline.NewFeatureSchema()
	if _, err := schema.Declare(FeatureSpeed); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, schema, nil); err == nil || !strings.Contains(err.Error(), FeatureSpeed) {
		t.Errorf("a feature declared twice: %v", err)
	}
}

func TestFeatureNames(t *testing.T) {
	r := newRig(t, Config{})
	want := []string{"dist_home_km", "dist_prev_km", "speed_kmh", "country_changed", "foreign",
		"new_device", "deny_listed", "allow_listed", "country_risk", "merchant_risk"}
	if got := r.schema.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("features %v, want %v", got, want)
	}
	if k, v := r.f.Version(); k != "" || v != "" {
		t.Errorf("Version() = %q, %q", k, v)
	}
}
