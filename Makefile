# fraudpipe: the two commands are `make demo` (run the main job on embedded defaults) and
# `make test` (every test). See README.md.

GO      ?= go
BIN     := bin/fraudpipe
OUT     := out
DEMO_ARGS ?= --customers 2000 --terminals 4000 --days 60

.PHONY: all build demo replay-demo test vet fuzz vulncheck bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fraudpipe

# The whole system on one machine for a minute, with a live view: embedded NATS, the
# generator publishing into it, the pipeline, the ledger, the archive and alerts.
DEMO_FLAGS ?= --duration 60s
demo: build
	$(BIN) demo $(DEMO_FLAGS)

# A labelled synthetic stream, replayed through the whole pipeline with the built-in
# config: velocity features, CEL rules, the SQLite ledger, decisions and dead letters.
replay-demo: build
	@mkdir -p $(OUT)
	@rm -f $(OUT)/ledger.db $(OUT)/ledger.db-wal $(OUT)/ledger.db-shm
	$(BIN) gen --seed 1 $(DEMO_ARGS) --out $(OUT)/transactions.ndjson
	$(BIN) replay --input $(OUT)/transactions.ndjson --feedback-from-labels 168h --out $(OUT)/decisions.ndjson --ledger $(OUT)/ledger.db
	@echo "decisions: $(OUT)/decisions.ndjson  dead letters: $(OUT)/decisions.dead.ndjson  ledger: $(OUT)/ledger.db"

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# Every test: the ledger's against a throwaway PostgreSQL (installed with apt-get when
# missing) as well as SQLite, the model's parity with Python's XGBoost (python3-xgboost).
test: vet
	scripts/install-python-deps
	scripts/install-promtool
	scripts/kinesalite install
	scripts/with-postgres $(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	$(MAKE) vulncheck

# Known vulnerabilities the code reaches, checked against an offline copy of the Go
# vulnerability database (the module golang.org/x/vulndb), cached in .cache/. Module
# findings fail; the standard library's are reported (VULNCHECK_STDLIB=fail to fail).
vulncheck:
	scripts/govulncheck

# Each fuzz target for a bounded time; new failures land in testdata/fuzz of the package.
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeTransaction$$' -fuzztime $(FUZZTIME) ./pipeline
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(FUZZTIME) ./pipeline/window
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pipeline/config
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./scorers/rules
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./scorers/model
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./scorers/lightgbm
	$(GO) test -run '^$$' -fuzz '^FuzzParseScore$$' -fuzztime $(FUZZTIME) ./scorers/remote
	$(GO) test -run '^$$' -fuzz '^FuzzLoadFiles$$' -fuzztime $(FUZZTIME) ./scorers/enrich
	$(GO) test -run '^$$' -fuzz '^FuzzTransactionsEndpoint$$' -fuzztime $(FUZZTIME) ./sources/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzCSV$$' -fuzztime $(FUZZTIME) ./sources/s3batch
	$(GO) test -run '^$$' -fuzz '^FuzzNDJSON$$' -fuzztime $(FUZZTIME) ./sources/s3batch
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./sinks/audit
	$(GO) test -run '^$$' -fuzz '^FuzzEval$$' -fuzztime $(FUZZTIME) ./scorers/rules
	$(GO) test -run '^$$' -fuzz '^FuzzParquet$$' -fuzztime $(FUZZTIME) ./sources/s3batch

bench:
	scripts/bench

clean:
	rm -rf bin $(OUT)
