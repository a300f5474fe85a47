# Tally's everyday commands. Each target is a line or two; read top to bottom.
# The tests use real databases: see "Tests and databases" in README.md.

# Pinned so that lint results do not change under us; `go run` fetches it.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A hung test fails after this instead of go test's default 10m, which
# CI would pay twice (test and race). Override: make test TIMEOUT=10m.
TIMEOUT := 5m

.PHONY: test race reliability scale lint generate check-generated fmt-check tidy-check demo bench

# test runs every test, uncached, on SQLite and on each reachable server.
test:
	go test -count=1 -timeout=$(TIMEOUT) ./...

# race runs the tests under the race detector: sessions, the engine and
# the mapper caches are used from many goroutines at once.
race:
	go test -race -count=1 -timeout=$(TIMEOUT) ./...

# scale runs the scale-out tests (package scale: read replicas, multi-primary
# clusters), which start their own servers on loopback and skip without
# TALLY_SCALE=1. A few minutes; CI runs it after race.
scale:
	TALLY_SCALE=1 go test -count=1 -timeout=10m -v -run . ./scale/...

# reliability runs what is too slow for every test run (under 10 minutes
# on 2 cores; CI runs it after race, see docs/reliability.md): the tests
# gated by TALLY_RELIABILITY=1 (elsewhere they skip, saying how to run
# them), each fuzz target for FUZZTIME from its seeds in testdata/fuzz, and
# last the demo's load — 200 clients over HTTP and TCP with connections
# killed and requests cut — for LOAD_DURATION on each database.
# A package's long tests are one more $(RELIABLE) line; a fuzz target one
# more $(FUZZ) line. About 6 minutes in all on 2 cores; a quick pass:
# make reliability LOAD_DURATION=10s FUZZTIME=3s
FUZZTIME := 10s
LOAD_DURATION := 60s
RELIABLE := TALLY_RELIABILITY=1 go test -count=1 -timeout=15m
FUZZ := go test -run '^$$' -fuzztime=$(FUZZTIME) -fuzz
reliability:
# The long tests, one line per package, e.g. $(RELIABLE) ./internal/servers/...
# Then the fuzz targets, one line each; then the load, which runs last.
	$(FUZZ) '^FuzzParseTag$$' ./mapper
	$(FUZZ) '^FuzzParseRelTag$$' ./mapper
	$(FUZZ) '^FuzzQuote$$' ./dialect
	$(FUZZ) '^FuzzRebind$$' ./dialect
	$(FUZZ) '^FuzzOrderBy$$' ./orm
	$(FUZZ) '^FuzzSession$$' ./orm
	$(FUZZ) '^FuzzParseLine$$' ./cmd/tallydemo
	$(FUZZ) '^FuzzDecodeTransfer$$' ./cmd/tallydemo
	$(RELIABLE) ./reliability/
	TALLY_LOAD_DURATION=$(LOAD_DURATION) $(RELIABLE) -v -run '^TestReliabilityLoadWithFaults$$' ./cmd/tallydemo

# lint runs go vet and staticcheck.
lint:
	go vet ./...
	go run $(STATICCHECK) ./...

# generate rewrites the generated files: every package's tally_gen.go
# (go:generate lines run cmd/tallygen), the bench module's (a module of its
# own, which ./... does not reach), then tallygen's golden files in
# testdata/tallygen, which go generate ./... does not visit.
generate:
	go generate ./...
	cd bench && go generate ./...
	go test -count=1 -run 'TestGoldenOutputs' ./cmd/tallygen -update

# check-generated fails if generating changes or adds a file: generated code
# must be committed up to date. Run it on a clean tree (as CI does).
check-generated: generate
	git diff --exit-code
	@test -z "$$(git status --porcelain)" || { git status --porcelain; echo "check-generated: untracked or changed files after go generate"; exit 1; }

# fmt-check fails if a Go file (testdata/ aside) is not gofmt'd.
fmt-check:
	@out=$$(find . -name '*.go' -not -path '*/testdata/*' -not -path './.git/*' | xargs -r gofmt -l) || exit 1; \
	test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }

# tidy-check fails if `go mod tidy` would change go.mod or go.sum: every
# requirement listed, none marked // indirect that the module imports.
tidy-check:
	go mod tidy -diff

# demo runs the demo service: a self-driving load on SQLite, then its report (cmd/tallydemo).
demo:
	go run ./cmd/tallydemo

# bench compares Tally with database/sql, sqlx, GORM and bun on every
# reachable database and rewrites docs/benchmarks.md and its charts (about
# 10 minutes on 2 cores). bench/ is a module of its own, so the peers never
# enter Tally's go.mod. Override: make bench BENCHFLAGS='-rounds 3 -benchtime 200ms'.
BENCHFLAGS :=
bench:
	cd bench && go run ./cmd/report -out ../docs/benchmarks.md $(BENCHFLAGS)
