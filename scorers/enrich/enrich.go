// Package enrich joins each transaction with reference data (customers' homes, merchants'
// and countries' risk, allow and deny lists) and with the card's own recent past (where and
// when it last paid, which devices it used), and writes the results as features for the
// rules and the model: distances, travel speed, country changes, new devices, list hits.
//
// Reference files (CSV, NDJSON or Parquet; lists also one entry a line) are reloaded when
// they change, atomically: a scorer sees either the old data or the new, never a mix, and a
// file that fails to parse leaves the old data in use. Per-card state is owned by one
// partition's scorer, bounded in event time and in count, and carried by checkpoints.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/pipeline"
)

// ListFiles are the paths of the lists of one kind (allow or deny); "" is no list.
type ListFiles struct {
	Cards     string // card ids
	Merchants string // merchant ids
	Devices   string // device ids
	IPs       string // IPv4 and IPv6 addresses and prefixes (CIDR)
}

// Config configures the enrichment. Every path is optional ("" is none) and used as given:
// resolve relative paths before. A configured file must exist and parse at start.
type Config struct {
	Customers string // customer_id, home_lat, home_lon, home_country
	Merchants string // merchant_id, country, mcc, risk
	Countries string // country, risk
	// Allow holds the allow lists. Only cards are read today (the allow_listed feature);
	// the other kinds are refused so that a list is never configured to no effect.
	Allow ListFiles
	Deny  ListFiles // any hit sets deny_listed
	// ReloadEvery is how often Start's loop checks the files for changes (size, modification
	// time, a new file renamed over the old); 0 is DefaultReloadEvery.
	ReloadEvery time.Duration
	// TTL is how much event time a card's state outlives its last payment; 0 is DefaultTTL.
	TTL time.Duration
	// MaxCards bounds the cards one partition keeps (0: no bound). Past it, the cards idle
	// the longest are forgotten, a tenth of the bound at a time.
	MaxCards int
}

// Defaults of Config.
const (
	DefaultReloadEvery = 10 * time.Second
	DefaultTTL         = 30 * 24 * time.Hour
)

// Feature names, as rules read them (features.<name>) and the model's feature lists name them.
const (
	FeatureDistHome       = "dist_home_km"
	FeatureDistPrev       = "dist_prev_km"
	FeatureSpeed          = "speed_kmh"
	FeatureCountryChanged = "country_changed"
	FeatureForeign        = "foreign"
	FeatureNewDevice      = "new_device"
	FeatureDenyListed     = "deny_listed"
	FeatureAllowListed    = "allow_listed"
	FeatureCountryRisk    = "country_risk"
	FeatureMerchantRisk   = "merchant_risk"
)

// Unknown is the value of dist_home_km, dist_prev_km and speed_kmh when a location or the
// previous position is missing.
const Unknown = -1

// DeviceMemory is how many distinct devices a card remembers, the most recent first.
const DeviceMemory = 8

// Factory loads the reference data, declares the features and builds one Scorer per
// partition. The reference data is shared by every partition; reloads swap it atomically.
type Factory struct {
	cfg Config
	log *slog.Logger
	ttl int64 // Config.TTL in milliseconds

	customers  *refFile[customerTable]
	merchants  *refFile[merchantTable]
	countries  *refFile[countryTable]
	allowCards *refFile[stringSet]
	denyCards  *refFile[stringSet]
	denyMerch  *refFile[stringSet]
	denyDevice *refFile[stringSet]
	denyIPs    *refFile[ipSet]
	files      []reloader

	// Feature indices.
	distHome, distPrev, speed, countryChanged, foreign int
	newDevice, deny, allow, countryRisk, merchantRisk  int

	scorers []*Scorer

	startOnce sync.Once
	stop      context.CancelFunc
	done      chan struct{}
}

// New loads every configured file and declares the features on schema. All features are
// declared whichever files are configured, so rules and models read the same names
// everywhere; a feature whose file is absent has its unknown value. logger may be nil.
func New(cfg Config, schema *pipeline.FeatureSchema, logger *slog.Logger) (*Factory, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.ReloadEvery < 0:
		return nil, fmt.Errorf("enrich: reload interval %v is negative: give a positive duration, or 0 for %v", cfg.ReloadEvery, DefaultReloadEvery)
	case cfg.ReloadEvery == 0:
		cfg.ReloadEvery = DefaultReloadEvery
	}
	switch {
	case cfg.TTL < 0:
		return nil, fmt.Errorf("enrich: state TTL %v is negative: give a positive duration, or 0 for %v", cfg.TTL, DefaultTTL)
	case cfg.TTL == 0:
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxCards < 0 {
		return nil, fmt.Errorf("enrich: max cards %d is negative: give a bound, or 0 for none", cfg.MaxCards)
	}
	for _, l := range []struct{ kind, path string }{{"merchants", cfg.Allow.Merchants}, {"devices", cfg.Allow.Devices}, {"IPs", cfg.Allow.IPs}} {
		if l.path != "" {
			return nil, fmt.Errorf("enrich: an allow list of %s (%s) is not supported: allow_listed reads the card allow list only; remove it", l.kind, l.path)
		}
	}
	f := &Factory{cfg: cfg, log: logger.With("scorer", "enrich"), ttl: cfg.TTL.Milliseconds()}
	var errs []error
	f.customers = addFile(f, &errs, "customers", cfg.Customers, loadCustomers)
	f.merchants = addFile(f, &errs, "merchants", cfg.Merchants, loadMerchants)
	f.countries = addFile(f, &errs, "countries", cfg.Countries, loadCountries)
	f.allowCards = addFile(f, &errs, "allow.cards", cfg.Allow.Cards, loadStringSet)
	f.denyCards = addFile(f, &errs, "deny.cards", cfg.Deny.Cards, loadStringSet)
	f.denyMerch = addFile(f, &errs, "deny.merchants", cfg.Deny.Merchants, loadStringSet)
	f.denyDevice = addFile(f, &errs, "deny.devices", cfg.Deny.Devices, loadStringSet)
	f.denyIPs = addFile(f, &errs, "deny.ips", cfg.Deny.IPs, loadIPSet)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}

	var err error
	declare := func(name string) int {
		i, e := schema.Declare(name)
		if e != nil && err == nil {
			err = fmt.Errorf("enrich: %w", e)
		}
		return i
	}
	f.distHome = declare(FeatureDistHome)
	f.distPrev = declare(FeatureDistPrev)
	f.speed = declare(FeatureSpeed)
	f.countryChanged = declare(FeatureCountryChanged)
	f.foreign = declare(FeatureForeign)
	f.newDevice = declare(FeatureNewDevice)
	f.deny = declare(FeatureDenyListed)
	f.allow = declare(FeatureAllowListed)
	f.countryRisk = declare(FeatureCountryRisk)
	f.merchantRisk = declare(FeatureMerchantRisk)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// addFile loads one configured file; an unconfigured one gives nil, which scorers read as
// no data.
func addFile[T any](f *Factory, errs *[]error, name, path string, load func(string) (*T, int, error)) *refFile[T] {
	if path == "" {
		return nil
	}
	r := &refFile[T]{name: name, path: path, load: load, log: f.log}
	if err := r.open(); err != nil {
		*errs = append(*errs, err)
	}
	f.files = append(f.files, r)
	return r
}

// Version reports no model or rules version: enrichment only computes features.
func (f *Factory) Version() (kind, version string) { return "", "" }

// Start starts the loop that reloads changed files every Config.ReloadEvery, until ctx is
// cancelled or Close is called. It returns at once; calls after the first do nothing.
func (f *Factory) Start(ctx context.Context) {
	f.startOnce.Do(func() {
		ctx, f.stop = context.WithCancel(ctx)
		f.done = make(chan struct{})
		go f.loop(ctx)
	})
}

func (f *Factory) loop(ctx context.Context) {
	defer close(f.done)
	if len(f.files) == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(f.cfg.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.Reload()
		}
	}
}

// Reload checks every file now and reloads those that changed, as the loop does on each
// tick (an operator's SIGHUP, a test). It is safe to call at any time.
func (f *Factory) Reload() {
	for _, r := range f.files {
		r.check()
	}
}

// Close stops the reload loop and waits for it. The data in use stays usable.
func (f *Factory) Close() {
	f.startOnce.Do(func() {}) // a later Start does nothing
	if f.stop != nil {
		f.stop()
		<-f.done
	}
}

// Stats are the reference files' reloads and the per-card state's counts, summed over
// partitions.
type Stats struct {
	Files        []FileStats // the configured files, in Config order
	Cards        int64       // cards with state now
	ExpiredCards int64       // forgotten after Config.TTL of event time without a payment
	EvictedCards int64       // forgotten early to stay within Config.MaxCards
}

// Stats reads the counts. It may be called while the engine runs: they are read atomically.
func (f *Factory) Stats() Stats {
	var st Stats
	for _, r := range f.files {
		st.Files = append(st.Files, r.stats())
	}
	for _, s := range f.scorers {
		st.Cards += s.nCards.Load()
		st.ExpiredCards += s.expired.Load()
		st.EvictedCards += s.evicted.Load()
	}
	return st
}

// NewScorer returns the scorer of one partition, with its own card state. It must not be
// called concurrently with itself or Stats: the engine builds partitions before it runs.
func (f *Factory) NewScorer(int) (pipeline.Scorer, error) {
	s := newScorer(f)
	f.scorers = append(f.scorers, s)
	return s, nil
}

// Register adds the enrichment's metrics to reg: per reference file (label file: customers,
// deny.ips, ...) its entries, reloads, failed reloads and whether it is failing now, and the
// card state's size and forgetting.
func (f *Factory) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, r := range f.files {
		name := r.stats().Name
		one := func() FileStats { return r.stats() }
		labels := prometheus.Labels{"file": name}
		errs = append(errs,
			reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "fraudpipe_enrich_file_entries", Help: "Rows or list entries of a reference file in use.", ConstLabels: labels,
			}, func() float64 { return float64(one().Entries) })),
			reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "fraudpipe_enrich_file_reloads_total", Help: "Successful reloads of a reference file after it changed.", ConstLabels: labels,
			}, func() float64 { return float64(one().Reloads) })),
			reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "fraudpipe_enrich_file_reload_failures_total", Help: "Reloads of a reference file that failed and kept the data loaded before.", ConstLabels: labels,
			}, func() float64 { return float64(one().Failures) })),
			reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "fraudpipe_enrich_file_failing", Help: "1 while a reference file's latest reload failed (the log says why), else 0.", ConstLabels: labels,
			}, func() float64 {
				if one().LastError != "" {
					return 1
				}
				return 0
			})),
		)
	}
	errs = append(errs,
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraudpipe_enrich_cards", Help: "Cards with enrichment state (last position, devices), over all partitions.",
		}, func() float64 { return float64(f.Stats().Cards) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraudpipe_enrich_cards_expired_total", Help: "Cards whose enrichment state was forgotten after its TTL of event time without a payment.",
		}, func() float64 { return float64(f.Stats().ExpiredCards) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraudpipe_enrich_cards_evicted_total", Help: "Cards whose enrichment state was forgotten early to stay within the per-partition bound.",
		}, func() float64 { return float64(f.Stats().EvictedCards) })),
	)
	return errors.Join(errs...)
}
