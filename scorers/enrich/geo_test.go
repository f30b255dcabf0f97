package enrich

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestHaversineKnownDistances(t *testing.T) {
	for _, c := range []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		km, tol                float64
	}{
		{"Paris-London", paris[0], paris[1], london[0], london[1], 343.5, 0.5},
		{"New York-Los Angeles", 40.7128, -74.0060, 34.0522, -118.2437, 3936, 5},
		{"Sydney-London", -33.8688, 151.2093, london[0], london[1], 16994, 10},
		{"equator to pole", 0, 0, 90, 0, math.Pi / 2 * EarthRadiusKm, 1e-6},
		{"antipodes on the equator", 0, 0, 0, 180, math.Pi * EarthRadiusKm, 1e-6},
		{"across the antimeridian", 0, 179.5, 0, -179.5, 111.195, 0.01},
		{"same point", paris[0], paris[1], paris[0], paris[1], 0, 0},
	} {
		got := Haversine(c.lat1, c.lon1, c.lat2, c.lon2)
		if math.Abs(got-c.km) > c.tol {
			t.Errorf("%s: %.3f km, want %.3f ± %g", c.name, got, c.km, c.tol)
		}
		if back := Haversine(c.lat2, c.lon2, c.lat1, c.lon1); math.Abs(back-got) > 1e-9 {
			t.Errorf("%s: not symmetric: %v and %v", c.name, got, back)
		}
	}
}

// TestSeriesAgreeWithMath checks the series of sinSmall and asinSmall against the math
// package over their range and across the bound, and distance against the formula with math's
// functions alone: within two units in the last place.
func TestSeriesAgreeWithMath(t *testing.T) {
	for i := -2000; i <= 2000; i++ {
		x := float64(i) / 2000 * 0.2
		if d := math.Abs(sinSmall(x) - math.Sin(x)); d > 4.5e-16*math.Abs(x) {
			t.Fatalf("sinSmall(%v) is off by %g", x, d)
		}
		if x >= 0 {
			if d := math.Abs(asinSmall(x) - math.Asin(x)); d > 4.5e-16*x {
				t.Fatalf("asinSmall(%v) is off by %g", x, d)
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		a := newPoint(rng.Float64()*180-90, rng.Float64()*360-180)
		// Mostly near points, some far.
		spread := []float64{0.001, 0.1, 1, 10, 180}[rng.IntN(5)]
		b := newPoint(math.Max(-90, math.Min(90, a.lat*180/math.Pi+(rng.Float64()-0.5)*spread)), a.lon*180/math.Pi+(rng.Float64()-0.5)*2*spread)
		sLat, sLon := math.Sin((b.lat-a.lat)/2), math.Sin((b.lon-a.lon)/2)
		want := 2 * EarthRadiusKm * math.Asin(math.Sqrt(math.Min(1, sLat*sLat+a.cosLat*b.cosLat*sLon*sLon)))
		if got := distance(a, b); math.Abs(got-want) > 1e-12*want+1e-12 {
			t.Fatalf("distance %v, with math's functions %v", got, want)
		}
	}
}
