# dbworker: `make run` runs a worker against local services, `make test` runs
# every test. Both install or start PostgreSQL (with pgvector), Redis and NATS
# when they are missing (Debian/Ubuntu, as root).

GO        ?= go
BIN       := bin
NATS_CLI  := github.com/nats-io/natscli/nats@v0.5.0
export POSTGRES_URL ?= postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable
export NATS_URL     ?= nats://127.0.0.1:4222
export LOG_FORMAT   ?= console

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: services
services: ## install or start PostgreSQL+pgvector, Redis and NATS when missing
	@bash scripts/ensure-services.sh

.PHONY: build
build: ## build bin/worker and bin/publisher
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: services build ## run a worker against the local services
	./$(BIN)/worker

.PHONY: run-publisher
run-publisher: build ## run the maintenance scheduler (schedules.yaml) against NATS_URL
	./$(BIN)/publisher run

.PHONY: run-embedded
run-embedded: build ## run a worker with an embedded nats-server on NATS_URL's address
	@SKIP_NATS=1 bash scripts/ensure-services.sh
	./$(BIN)/worker -embedded

.PHONY: test
test: services ## vet, every test with the race detector, the nats CLI walkthrough, then the TypeScript client's tests
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	bash scripts/cli-walkthrough.sh
	$(MAKE) test-ts

TS := clients/ts

.PHONY: test-ts
test-ts: ## the TypeScript client (clients/ts): npm ci when node_modules is missing or older than the lockfile, tsc, node --test against a real worker
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "test-ts: needs Node 20+ and npm (apt-get install nodejs npm)"; exit 1; }
	@cmp -s $(TS)/package-lock.json $(TS)/node_modules/.installed-lock.json || \
		(cd $(TS) && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock.json)
	cd $(TS) && rm -rf dist && npx tsc -p tsconfig.json
	bash $(TS)/test/run.sh

FUZZTIME ?= 10s
FUZZ_TARGETS := pgexec/sqltext:FuzzBind pgexec/pgjson:FuzzTextArray pgexec/pgjson:FuzzAppendValue worker:FuzzDecodeRequests worker:FuzzFlatDecode subjects:FuzzToken

.PHONY: fuzz
# A target that fails without writing a failing input to its testdata is
# run once more: go1.26's fuzz coordinator can report "context deadline
# exceeded" at the end of -fuzztime having found nothing (golang/go#75804,
# fixed in go1.27). A written input always fails at once.
fuzz: ## run every fuzz target for FUZZTIME (10s) each, from the committed corpora
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; dir=internal/$$pkg/testdata/fuzz/$$name; \
		echo "fuzz $$name ($(FUZZTIME))"; \
		before=$$(ls $$dir 2>/dev/null | wc -l); \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./internal/$$pkg/ && continue; \
		test "$$(ls $$dir 2>/dev/null | wc -l)" = "$$before" || exit 1; \
		echo "fuzz $$name: failed with no failing input written (golang/go#75804): once more"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./internal/$$pkg/ || exit 1; \
	done

.PHONY: cli-walkthrough
cli-walkthrough: ## run docs/nats-cli.md with the real nats CLI against a fresh worker
	bash scripts/cli-walkthrough.sh

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

.PHONY: bench
bench: services build ## every path through a worker against its baseline (docs/benchmarks.md), then micro-benchmarks
	./$(BIN)/bench -duration $${BENCH_DURATION:-2s} -out docs
	$(GO) test -run '^$$' -bench 'Bind|AppendRow|Decode|Select1|SessionReset|Serve' -benchmem ./internal/pgexec/... ./internal/worker/

.PHONY: tools
tools: ## install the nats CLI (nats req, nats micro ls, nats stream view)
	$(GO) install $(NATS_CLI)

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
