package enrich

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// BenchmarkScore scores payments of 5000 cards with every feature on: customers with homes,
// merchants, countries, all deny lists (1000 IP prefixes) and the card allow list, each
// payment located, with a country, a device and an IP.
func BenchmarkScore(b *testing.B) {
	dir := b.TempDir()
	const cards = 5000
	var cust, merch, denyCards, ips strings.Builder
	cust.WriteString("customer_id,home_lat,home_lon,home_country\n")
	merch.WriteString("merchant_id,country,mcc,risk\n")
	for i := range cards {
		fmt.Fprintf(&cust, "cu-%d,%.4f,%.4f,FR\n", i, 43+float64(i%70)/10, float64(i%90)/10-2)
	}
	for i := range 1000 {
		fmt.Fprintf(&merch, "m-%d,DE,5411,0.%d\n", i, i%10)
		fmt.Fprintf(&denyCards, "stolen-%d\n", i)
		fmt.Fprintf(&ips, "%d.%d.%d.0/24\n2001:db8:%x::/48\n", 10+i%200, i%256, i/256, i)
	}
	cfg := Config{
		Customers: writeFile(b, dir, "customers.csv", cust.String()),
		Merchants: writeFile(b, dir, "merchants.csv", merch.String()),
		Countries: writeFile(b, dir, "countries.csv", "country,risk\nFR,0.1\nDE,0.2\nGB,0.3\n"),
		Allow:     ListFiles{Cards: writeFile(b, dir, "allow.txt", "card-7\n")},
		Deny: ListFiles{
			Cards:     writeFile(b, dir, "deny-cards.txt", denyCards.String()),
			Merchants: writeFile(b, dir, "deny-merchants.txt", "m-13\n"),
			Devices:   writeFile(b, dir, "deny-devices.txt", "emulator\n"),
			IPs:       writeFile(b, dir, "deny-ips.txt", ips.String()),
		},
	}
	schema := pipeline.NewFeatureSchema()
	f, err := New(cfg, schema, nil)
	if err != nil {
		b.Fatal(err)
	}
	sc, _ := f.NewScorer(0)
	countries := []string{"FR", "DE", "GB"}
	txs := make([]pipeline.Transaction, cards*4)
	for i := range txs {
		c := i % cards
		txs[i] = pipeline.Transaction{
			CardID: fmt.Sprint("card-", c), CustomerID: fmt.Sprint("cu-", c), MerchantID: fmt.Sprint("m-", i%1000),
			Country: countries[i%3], Lat: 44 + float64(i%50)/10, Lon: float64(i%40) / 10, HasGeo: true,
			DeviceID: fmt.Sprint("device-", c, "-", i%5), IP: fmt.Sprintf("%d.%d.%d.%d", 10+i%250, i%256, 7, i%200),
		}
		if i%2 == 1 {
			txs[i].IP = fmt.Sprintf("2001:db8:%x::%x", i%1500, i)
		}
	}
	e := &pipeline.Eval{Features: make([]float64, schema.Len())}
	ts := int64(1_795_000_000_000)
	for i := range txs { // every card has state, as in a steady stream
		ts += 100
		txs[i].TS = ts
		e.Tx = &txs[i]
		sc.Score(e)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tx := &txs[i%len(txs)]
		ts += 100
		tx.TS = ts
		e.Tx = tx
		sc.Score(e)
		i++
	}
}
