package enrich

import "math"

// EarthRadiusKm is the mean radius of the Earth (IUGG) that distances use.
const EarthRadiusKm = 6371.0088

// point is a location in radians with the cosine of its latitude, which every haversine
// through it needs: computed once per customer home and once per card position.
type point struct {
	lat, lon, cosLat float64
}

func newPoint(latDeg, lonDeg float64) point {
	lat := latDeg * (math.Pi / 180)
	return point{lat: lat, lon: lonDeg * (math.Pi / 180), cosLat: math.Cos(lat)}
}

// Haversine is the great-circle distance in kilometres between two points given in degrees.
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	return distance(newPoint(lat1, lon1), newPoint(lat2, lon2))
}

// distance is the haversine distance in kilometres: 2R·asin(√h) with
// h = sin²(Δlat/2) + cos(lat1)·cos(lat2)·sin²(Δlon/2), h clamped to 1 against rounding at
// the antipodes.
func distance(a, b point) float64 {
	sLat := sinSmall((b.lat - a.lat) / 2)
	sLon := sinSmall((b.lon - a.lon) / 2)
	h := sLat*sLat + a.cosLat*b.cosLat*sLon*sLon
	if h > 1 {
		h = 1
	}
	return 2 * EarthRadiusKm * asinSmall(math.Sqrt(h))
}

// small is the bound under which sinSmall and asinSmall use their series: most payments are
// near the previous one and the customer's home (under 1276 km, √h < 0.1), where a few
// multiplications are exact to the last bit or two, several times faster than math's
// general functions.
const small = 0.1

// sinSmall is sin(x), by its Taylor series through x¹¹ for |x| < small (the remainder is
// under 1e-20 of x).
func sinSmall(x float64) float64 {
	if x >= small || x <= -small {
		return math.Sin(x)
	}
	x2 := x * x
	return x * (1 - x2*(1.0/6)*(1-x2*(1.0/20)*(1-x2*(1.0/42)*(1-x2*(1.0/72)*(1-x2*(1.0/110))))))
}

// asinSmall is asin(y), by its Taylor series through y¹⁵ for 0 <= y < small (the remainder
// is under 1e-17 of y).
func asinSmall(y float64) float64 {
	if y >= small {
		return math.Asin(y)
	}
	y2 := y * y
	return y * (1 + y2*(1.0/6+y2*(3.0/40+y2*(5.0/112+y2*(35.0/1152+y2*(63.0/2816+y2*(231.0/13312+y2*(143.0/10240))))))))
}
