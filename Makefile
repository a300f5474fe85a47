# Tally's everyday commands. Each target is a line or two; read top to bottom.
# The tests use real databases: see "Tests and databases" in README.md.

# Pinned so that lint results do not change under us; `go run` fetches it.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A hung test fails after this instead of go test's default 10m, which
# CI would pay twice (test and race). Override: make test TIMEOUT=10m.
TIMEOUT := 5m

.PHONY: test race scale lint generate check-generated fmt-check tidy-check demo bench

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

# lint runs go vet and staticcheck.
lint:
	go vet ./...
	go run $(STATICCHECK) ./...

# generate rewrites the generated files: every package's tally_gen.go
# (go:generate lines run cmd/tallygen), then tallygen's golden files in
# testdata/tallygen, which go generate ./... does not visit.
generate:
	go generate ./...
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
