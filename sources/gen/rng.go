package gen

import (
	"math"
	"math/rand/v2"
)

// Random streams and samplers. Every random number comes from a PCG stream whose seed is
// derived from (Options.Seed, purpose, day, customer), so a customer's day is the same
// whatever else is simulated, and nothing depends on scheduling or map order.
//
// The samplers use only operations that Go evaluates identically on every architecture:
// integer arithmetic, correctly rounded + - * / and sqrt, and products wrapped in an
// explicit float64 conversion, which the Go spec guarantees is rounded on its own and never
// fused into a multiply-add (arm64, ppc64, s390x and amd64 v3 fuse otherwise; the only
// fusions left, inside inlined rand.Float64 on arm64, multiply by a power of two, which is
// exact, so fused or not they give the same bits). math.Log,
// math.Exp and rand.NormFloat64 are avoided: they use assembly or fusable code on some
// architectures, which could change a last bit and with it the whole stream.

// Stream purposes, mixed into the seeds.
const (
	tagCustomers  = 0x6375737470726f66 // customer profiles
	tagTerminals  = 0x7465726d70726f66 // terminal locations
	tagTermAttr   = 0x7465726d61747472 // terminal mcc and country
	tagChannel    = 0x6368616e6e656c73 // customer channel
	tagCompromise = 0x636f6d70726f6d73 // daily compromised terminals and customers
	tagTx         = 0x7472616e73616374 // a customer's transactions of one day
)

// mix is the splitmix64 finalizer: a bijective avalanche of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// seeds derives the two PCG seed words of the stream (seed, tag, a, b).
func seeds(seed, tag, a, b uint64) (uint64, uint64) {
	h := mix(seed ^ tag)
	h = mix(h ^ a)
	h = mix(h ^ b)
	return h, mix(h ^ 0x5bd1e9955bd1e995)
}

// stream is a reseedable PCG stream with portable samplers.
type stream struct {
	pcg      rand.PCG
	r        *rand.Rand
	spare    float64
	hasSpare bool
}

func newStream(seed, tag, a, b uint64) *stream {
	s := &stream{}
	s.r = rand.New(&s.pcg)
	s.reseed(seed, tag, a, b)
	return s
}

func (s *stream) reseed(seed, tag, a, b uint64) {
	s.pcg.Seed(seeds(seed, tag, a, b))
	s.hasSpare = false
}

// float returns a uniform number in [0, 1).
func (s *stream) float() float64 { return s.r.Float64() }

// intN returns a uniform integer in [0, n).
func (s *stream) intN(n int) int { return s.r.IntN(n) }

// norm returns a standard normal deviate (Marsaglia's polar method).
func (s *stream) norm() float64 {
	if s.hasSpare {
		s.hasSpare = false
		return s.spare
	}
	for {
		u := float64(2*s.r.Float64()) - 1
		v := float64(2*s.r.Float64()) - 1
		q := float64(u*u) + float64(v*v)
		if q > 0 && q < 1 {
			m := math.Sqrt(float64(-2*plog(q)) / q)
			s.spare, s.hasSpare = float64(v*m), true
			return float64(u * m)
		}
	}
}

// poisson returns a Poisson deviate of mean lambda, counting exponential inter-arrival
// times within lambda (fast for the simulator's small means).
func (s *stream) poisson(lambda float64) int {
	k := 0
	for t := 0.0; ; k++ {
		t -= plog(1 - s.r.Float64()) // 1-U is in (0, 1]
		if t >= lambda {
			return k
		}
	}
}

// Coefficients of the FreeBSD e_log.c approximation, as in Go's math.Log.
const (
	ln2Hi = 6.93147180369123816490e-01
	ln2Lo = 1.90821492927058770002e-10
	lg1   = 6.666666666666735130e-01
	lg2   = 3.999999999940941908e-01
	lg3   = 2.857142874366239149e-01
	lg4   = 2.222219843214978396e-01
	lg5   = 1.818357216161805012e-01
	lg6   = 1.531383769920937332e-01
	lg7   = 1.479819860511658591e-01
)

// plog is the natural logarithm of a positive finite x, computed the same way on every
// architecture (Go's pure-Go math.Log algorithm with every product rounded on its own).
func plog(x float64) float64 {
	if !(x > 0) || math.IsInf(x, 1) {
		if x == 0 {
			return math.Inf(-1)
		}
		if math.IsInf(x, 1) {
			return x
		}
		return math.NaN()
	}
	ki := 0
	if x < 0x1p-1022 { // subnormal: scale into the normal range (exact)
		x = float64(x * 0x1p52)
		ki = -52
	}
	bits := math.Float64bits(x)
	ki += int(bits>>52&0x7ff) - 1022
	f1 := math.Float64frombits(bits&^(0x7ff<<52) | 1022<<52) // in [0.5, 1)
	if f1 < math.Sqrt2/2 {
		f1 *= 2
		ki--
	}
	f := f1 - 1
	k := float64(ki)
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := float64(s2 * (lg1 + float64(s4*(lg3+float64(s4*(lg5+float64(s4*lg7)))))))
	t2 := float64(s4 * (lg2 + float64(s4*(lg4+float64(s4*lg6)))))
	r := t1 + t2
	hfsq := float64(0.5 * float64(f*f))
	return float64(k*ln2Hi) - ((hfsq - (float64(s*(hfsq+r)) + float64(k*ln2Lo))) - f)
}
