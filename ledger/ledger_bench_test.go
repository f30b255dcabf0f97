package ledger

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// BenchmarkLedger posts batches of 1, 100, 1000, 8000 and 32000 fresh transactions on every
// store (PostgreSQL when FRAUDPIPE_TEST_POSTGRES is set) with a hot-account mix: a
// quarter of the payments go to one hot merchant, the rest to 10,000 merchants, from
// 5,000 payers; every account exists already. Each request names its decision (Seq) and
// the model and rules versions, as the engine's do. One op is one posted request.
func BenchmarkLedger(b *testing.B) {
	bes := []backend{sqliteBackend}
	if pgURL() != "" {
		bes = append(bes, pgBackend)
	}
	for _, be := range bes {
		for _, size := range []int{1, 100, 1000, 8000, 32000} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, size), func(b *testing.B) { benchmarkLedger(b, be, size) })
		}
	}
}

func benchmarkLedger(b *testing.B, be backend, batch int) {
	const (
		payers    = 5_000
		merchants = 10_000
	)
	s := openStore(b, be, be.newLoc(b), Options{DefaultLimit: flatLimit(1 << 50)})
	payerIDs := make([]string, payers)
	for i := range payerIDs {
		payerIDs[i] = fmt.Sprintf("acct-%05d", i)
	}
	merchantIDs := make([]string, merchants)
	for i := range merchantIDs {
		merchantIDs[i] = fmt.Sprintf("m-%05d", i)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	seq := 0
	reqs := make([]pipeline.PostRequest, max(batch, 4096))
	fill := func(n int) []pipeline.PostRequest {
		for i := range n {
			seq++
			payee := "m-hot"
			if rng.IntN(4) != 0 {
				payee = merchantIDs[rng.IntN(merchants)]
			}
			reqs[i] = pipeline.PostRequest{
				TxID: fmt.Sprintf("tx-%010d", seq), TS: 1_700_000_000_000 + int64(seq), Amount: 1 + rng.Int64N(50_000),
				Currency: eur, Payer: payerIDs[rng.IntN(payers)], Payee: payee,
				Seq: uint64(seq), Model: benchModel, Rules: benchRules,
			}
		}
		return reqs[:n]
	}
	for i := 0; i < merchants; i += 4096 {
		r := fill(4096)
		for j := range r {
			r[j].Payer, r[j].Payee = payerIDs[(i+j)%payers], merchantIDs[(i+j)%merchants]
		}
		postS(b, s, r...)
	}
	measurePosts(b, s, batch, fill, func(r []pipeline.PostRequest) {
		for i := range r {
			if r[i].Status != pipeline.LedgerPosted {
				b.Fatalf("request %d: %s %s", i, r[i].Status, r[i].Reason)
			}
		}
	}, serverCPU(s))
}
