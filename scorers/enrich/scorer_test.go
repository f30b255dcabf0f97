package enrich

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// refConfig writes a small set of reference files and returns the config reading them.
func refConfig(t testing.TB) Config {
	dir := t.TempDir()
	return Config{
		Customers: writeFile(t, dir, "customers.csv", "customer_id,home_lat,home_lon,home_country\ncu-1,48.8566,2.3522,FR\ncu-2,,,GB\n"),
		Merchants: writeFile(t, dir, "merchants.csv", "merchant_id,country,mcc,risk\nm-fr,FR,5411,0.2\nm-de,DE,5999,0.9\nm-bad,GB,7995,0.5\n"),
		Countries: writeFile(t, dir, "countries.csv", "country,risk\nFR,0.1\nGB,0.3\n"),
		Allow:     ListFiles{Cards: writeFile(t, dir, "allow-cards.txt", "c-vip\n")},
		Deny: ListFiles{
			Cards:     writeFile(t, dir, "deny-cards.txt", "c-stolen\n"),
			Merchants: writeFile(t, dir, "deny-merchants.csv", "value\nm-bad\n"),
			Devices:   writeFile(t, dir, "deny-devices.txt", "d-emulator\n"),
			IPs:       writeFile(t, dir, "deny-ips.txt", "198.51.100.0/24\n2001:db8::/32\n"),
		},
	}
}

type step struct {
	tx   pipeline.Transaction
	late bool
	want map[string]float64
}

func run(t *testing.T, r *rig, steps []step) {
	t.Helper()
	for i, st := range steps {
		got := r.score(st.tx, st.late)
		for k, v := range st.want {
			if math.Abs(got[k]-v) > 1e-6*math.Max(1, math.Abs(v)) {
				t.Errorf("step %d (%s %s): %s = %v, want %v", i, st.tx.CardID, st.tx.TSText, k, got[k], v)
			}
		}
	}
}

func TestFeaturesOnAStream(t *testing.T) {
	r := newRig(t, refConfig(t))
	pl := Haversine(paris[0], paris[1], london[0], london[1])
	pb := Haversine(paris[0], paris[1], berlin[0], berlin[1])
	run(t, r, []step{
		// The card's first payment, at its customer's home: nothing to compare with yet.
		{tx: txn(t, "c-1", "2026-11-25T10:00:00Z", at(paris), country("FR"), device("d-1"), customerID("cu-1"), merchantID("m-fr")),
			want: map[string]float64{"dist_home_km": 0, "dist_prev_km": -1, "speed_kmh": -1, "country_changed": 0, "foreign": 0,
				"new_device": 1, "deny_listed": 0, "allow_listed": 0, "country_risk": 0.1, "merchant_risk": 0.2}},
		// An hour later in London on the same device.
		{tx: txn(t, "c-1", "2026-11-25T11:00:00Z", at(london), country("GB"), device("d-1"), customerID("cu-1")),
			want: map[string]float64{"dist_home_km": pl, "dist_prev_km": pl, "speed_kmh": pl, "country_changed": 1, "foreign": 1,
				"new_device": 0, "country_risk": 0.3, "merchant_risk": 0}},
		// Thirty seconds later back in Paris on another device: the time counts as 60 s.
		{tx: txn(t, "c-1", "2026-11-25T11:00:30Z", at(paris), country("FR"), device("d-2"), customerID("cu-1")),
			want: map[string]float64{"dist_home_km": 0, "dist_prev_km": pl, "speed_kmh": pl * 60, "country_changed": 1, "foreign": 0, "new_device": 1}},
		// No location and no country: the merchant's country (DE) stands in; distances unknown.
		{tx: txn(t, "c-1", "2026-11-25T12:00:00Z", merchantID("m-de"), customerID("cu-1")),
			want: map[string]float64{"dist_home_km": -1, "dist_prev_km": -1, "speed_kmh": -1, "country_changed": 1, "foreign": 1,
				"new_device": 0, "country_risk": 0, "merchant_risk": 0.9}},
		// Two hours after the last located payment (Paris, 11:00:30), in Berlin.
		{tx: txn(t, "c-1", "2026-11-25T13:00:30Z", at(berlin), country("DE"), customerID("cu-1")),
			want: map[string]float64{"dist_home_km": pb, "dist_prev_km": pb, "speed_kmh": pb / 2, "country_changed": 0, "foreign": 1}},
		// Another card is independent; its customer has no home location.
		{tx: txn(t, "c-2", "2026-11-25T13:01:00Z", at(london), country("FR"), device("d-1"), customerID("cu-2")),
			want: map[string]float64{"dist_home_km": -1, "dist_prev_km": -1, "speed_kmh": -1, "country_changed": 0, "foreign": 1, "new_device": 1}},
		// An unknown customer and merchant: unknown values.
		{tx: txn(t, "c-3", "2026-11-25T13:02:00Z", at(london), country("US"), customerID("cu-unknown"), merchantID("m-unknown")),
			want: map[string]float64{"dist_home_km": -1, "foreign": 0, "country_risk": 0, "merchant_risk": 0}},
	})
}

func TestImpossibleTravel(t *testing.T) {
	r := newRig(t, Config{})
	ny := [2]float64{40.7128, -74.0060}
	d := Haversine(paris[0], paris[1], ny[0], ny[1])
	run(t, r, []step{
		{tx: txn(t, "c", "2026-11-25T10:00:00Z", at(paris))},
		// Paris to New York in 7 hours is a flight: about 830 km/h.
		{tx: txn(t, "c", "2026-11-25T17:00:00Z", at(ny)), want: map[string]float64{"speed_kmh": d / 7}},
		// Back in Paris one hour later is impossible.
		{tx: txn(t, "c", "2026-11-25T18:00:00Z", at(paris)), want: map[string]float64{"speed_kmh": d}},
	})
	if d/7 > 900 || d <= 900 {
		t.Fatalf("the example no longer straddles 900 km/h: %v, %v", d/7, d)
	}
}

func TestLists(t *testing.T) {
	r := newRig(t, refConfig(t))
	for _, c := range []struct {
		name        string
		tx          pipeline.Transaction
		deny, allow float64
	}{
		{"clean", txn(t, "c-1", "2026-11-25T10:00:00Z", ip("198.51.101.1"), device("d-1"), merchantID("m-fr")), 0, 0},
		{"card", txn(t, "c-stolen", "2026-11-25T10:00:00Z"), 1, 0},
		{"merchant", txn(t, "c-1", "2026-11-25T10:00:00Z", merchantID("m-bad")), 1, 0},
		{"device", txn(t, "c-1", "2026-11-25T10:00:00Z", device("d-emulator")), 1, 0},
		{"IPv4 in a /24", txn(t, "c-1", "2026-11-25T10:00:00Z", ip("198.51.100.77")), 1, 0},
		{"IPv6 in a /32", txn(t, "c-1", "2026-11-25T10:00:00Z", ip("2001:db8:42::1")), 1, 0},
		{"IPv6 outside", txn(t, "c-1", "2026-11-25T10:00:00Z", ip("2001:db9::1")), 0, 0},
		{"not an address", txn(t, "c-1", "2026-11-25T10:00:00Z", ip("198.51.100.x")), 0, 0},
		{"allowed card", txn(t, "c-vip", "2026-11-25T10:00:00Z"), 0, 1},
		{"allowed card, denied IP", txn(t, "c-vip", "2026-11-25T10:00:00Z", ip("198.51.100.1")), 1, 1},
	} {
		got := r.score(c.tx, false)
		if got["deny_listed"] != c.deny || got["allow_listed"] != c.allow {
			t.Errorf("%s: deny_listed %v allow_listed %v, want %v %v", c.name, got["deny_listed"], got["allow_listed"], c.deny, c.allow)
		}
	}
}

func TestWithoutReferenceData(t *testing.T) {
	r := newRig(t, Config{})
	run(t, r, []step{
		{tx: txn(t, "c", "2026-11-25T10:00:00Z", at(paris), country("FR"), customerID("cu-1"), merchantID("m-fr"), ip("198.51.100.1")),
			want: map[string]float64{"dist_home_km": -1, "foreign": 0, "deny_listed": 0, "allow_listed": 0, "country_risk": 0, "merchant_risk": 0}},
		{tx: txn(t, "c", "2026-11-25T11:00:00Z", at(london), country("GB")),
			want: map[string]float64{"dist_prev_km": Haversine(paris[0], paris[1], london[0], london[1]), "country_changed": 1}},
	})
}

func TestDevicesRememberTheLastEight(t *testing.T) {
	r := newRig(t, Config{})
	ts := func(i int) string { return fmt.Sprintf("2026-11-25T10:%02d:00Z", i) }
	i := 0
	use := func(d string, want float64) {
		t.Helper()
		got := r.score(txn(t, "c", ts(i), device(d)), false)["new_device"]
		if got != want {
			t.Errorf("payment %d on %s: new_device %v, want %v", i, d, got, want)
		}
		i++
	}
	use("d0", 1)
	use("d0", 0)
	for k := 1; k < DeviceMemory; k++ {
		use(fmt.Sprint("d", k), 1)
	}
	use("d0", 0) // eight devices remembered, d0 the most recent again
	use("d8", 1) // a ninth: d1, the least recently used, is forgotten
	use("d0", 0)
	use("d1", 1)
	// A payment without a device says nothing about devices.
	if got := r.score(txn(t, "c", ts(i)), false)["new_device"]; got != 0 {
		t.Errorf("no device: new_device %v", got)
	}
	// Devices are per card.
	if got := r.score(txn(t, "other", ts(i+1), device("d0")), false)["new_device"]; got != 1 {
		t.Errorf("another card's device: new_device %v", got)
	}
}

func TestLateEventsReadButDoNotChangeState(t *testing.T) {
	r := newRig(t, Config{})
	pl := Haversine(paris[0], paris[1], london[0], london[1])
	pb := Haversine(paris[0], paris[1], berlin[0], berlin[1])
	run(t, r, []step{
		{tx: txn(t, "c", "2026-11-25T10:00:00Z", at(paris), country("FR"), device("d-1"))},
		// Late, from London two hours earlier: compared with the state, not added to it.
		{tx: txn(t, "c", "2026-11-25T08:00:00Z", at(london), country("GB"), device("d-2")), late: true,
			want: map[string]float64{"dist_prev_km": pl, "speed_kmh": pl / 2, "country_changed": 1, "new_device": 1}},
		// The next payment is compared with Paris, and d-2 is still new.
		{tx: txn(t, "c", "2026-11-25T11:00:00Z", at(berlin), country("DE"), device("d-2")),
			want: map[string]float64{"dist_prev_km": pb, "speed_kmh": pb, "country_changed": 1, "new_device": 1}},
		// A late payment of a card never seen leaves no state behind.
		{tx: txn(t, "new", "2026-11-25T09:00:00Z", at(paris), device("d-9")), late: true,
			want: map[string]float64{"dist_prev_km": -1, "new_device": 1}},
		{tx: txn(t, "new", "2026-11-25T11:30:00Z", at(paris), device("d-9")),
			want: map[string]float64{"dist_prev_km": -1, "new_device": 1}},
	})
	if n := r.f.Stats().Cards; n != 2 {
		t.Errorf("%d cards, want 2", n)
	}
}

func TestOutOfOrderKeepsTheNewestPosition(t *testing.T) {
	r := newRig(t, Config{})
	pl := Haversine(paris[0], paris[1], london[0], london[1])
	lb := Haversine(london[0], london[1], berlin[0], berlin[1])
	run(t, r, []step{
		{tx: txn(t, "c", "2026-11-25T10:00:00Z", at(london), country("GB"))},
		// Within the allowed lateness but older than the state: compared with London.
		{tx: txn(t, "c", "2026-11-25T09:00:00Z", at(paris), country("FR")),
			want: map[string]float64{"dist_prev_km": pl, "speed_kmh": pl, "country_changed": 1}},
		// London stays the newest position and country.
		{tx: txn(t, "c", "2026-11-25T12:00:00Z", at(berlin), country("GB")),
			want: map[string]float64{"dist_prev_km": lb, "speed_kmh": lb / 2, "country_changed": 0}},
	})
}

func TestStateExpiresAfterTTL(t *testing.T) {
	r := newRig(t, Config{TTL: time.Hour})
	run(t, r, []step{
		{tx: txn(t, "c", "2026-11-25T10:00:00Z", at(paris), country("FR"), device("d"))},
		{tx: txn(t, "c", "2026-11-25T11:00:00Z", at(paris), country("GB"), device("d")),
			want: map[string]float64{"dist_prev_km": 0, "country_changed": 1, "new_device": 0}},
		{tx: txn(t, "other", "2026-11-25T11:30:00Z")},
		// More than an hour after the card's last payment: forgotten.
		{tx: txn(t, "c", "2026-11-25T12:00:01Z", at(paris), country("FR"), device("d")),
			want: map[string]float64{"dist_prev_km": -1, "speed_kmh": -1, "country_changed": 0, "new_device": 1}},
	})
	// The sweep forgets idle cards without a payment of theirs.
	r.score(txn(t, "third", "2026-11-25T14:00:00Z"), false)
	st := r.f.Stats()
	if st.Cards != 1 || st.ExpiredCards != 3 {
		t.Errorf("%d cards, %d expired; want 1 and 3", st.Cards, st.ExpiredCards)
	}
}

func TestMaxCardsBound(t *testing.T) {
	r := newRig(t, Config{MaxCards: 10})
	for i := range 25 {
		r.score(txn(t, fmt.Sprint("c", i), fmt.Sprintf("2026-11-25T10:%02d:00Z", i), at(paris)), false)
		if n := len(r.s.index); n > 10 {
			t.Fatalf("%d cards after %d payments, bound 10", n, i+1)
		}
	}
	st := r.f.Stats()
	// Past the bound a tenth of it (one card here) and one more make room at a time.
	if st.EvictedCards != 16 || st.Cards != 9 {
		t.Errorf("%d evicted, %d cards; want 16 and 9", st.EvictedCards, st.Cards)
	}
	// The newest card is kept, the oldest forgotten.
	if got := r.score(txn(t, "c24", "2026-11-25T11:00:00Z", at(london)), false)["dist_prev_km"]; got <= 0 {
		t.Errorf("the newest card lost its state: dist_prev_km %v", got)
	}
	if got := r.score(txn(t, "c0", "2026-11-25T11:00:00Z", at(london)), false)["dist_prev_km"]; got != -1 {
		t.Errorf("the oldest card kept its state: dist_prev_km %v", got)
	}
}
