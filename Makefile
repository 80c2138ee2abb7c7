# modeltel developer targets. `make test` is the README's test command and what CI runs.
GO            ?= go
export CGO_CFLAGS ?= -Wno-deprecated-declarations
GOBIN         := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
BENCHSTAT_VERSION   := v0.0.0-20260908200009-22c9c6c9d4da
GRPCURL_VERSION     := v1.9.4

# Benchmarks: `make bench` runs the performance set of issue 16, each benchmark next to its baseline
# in the same run and reporting its ratio to it (x-... units), and writes bench/$(BENCH_NAME).txt in
# benchstat's format (about 3 minutes with the defaults; docs/performance.md says what each row is).
# `make bench-all` runs every benchmark ($(BENCH) in $(BENCH_PKG)).
# Compare two runs with `make benchstat OLD=bench/main.txt NEW=bench/new.txt`.
BENCH       ?= .
BENCH_PKG   ?= ./...
BENCH_COUNT ?= 6
BENCH_TIME  ?= 200ms
BENCH_NAME  ?= new
OLD         ?= bench/main.txt
NEW         ?= bench/new.txt
# package@regexp@benchtime (empty: BENCH_TIME); the slow-backend rows run 2-3 s of offered load each, the
# small-queue row 2 s (issue 16's last rows: over capacity, and a queue smaller than a batch).
BENCH_SET   := \
	'./inference@^BenchmarkOutputTokens$$@' \
	'./middleware@^BenchmarkGRPC(Unary|Stream)$$@' \
	'./gpumon@^BenchmarkScrape$$@' \
	'./logging@^Benchmark(LokiHandleParallel|LokiHandleParallelKept|LokiFastSink|Handler)$$@' \
	'./logging@^BenchmarkLokiSlowBackend$$@1x' \
	'./logging@^BenchmarkLokiSlowBackendOverCapacity$$@1x' \
	'./logging@^BenchmarkLokiSmallQueue$$@1x'

.PHONY: all test bench bench-all benchstat lint tools e2e e2e-fleet stack fmt

all: lint test

## test: unit tests with the race detector, closing with "tests: N passed, N failed, N skipped"
test:
	./scripts/test.sh -race -count=1 ./...

## bench: issue 16's benchmarks next to their baselines (ratios), $(BENCH_COUNT) runs each, saved for benchstat
bench:
	@mkdir -p bench
	@: > bench/$(BENCH_NAME).txt
	@set -e; for spec in $(BENCH_SET); do \
		pkg=$${spec%%@*}; rest=$${spec#*@}; re=$${rest%@*}; t=$${rest##*@}; \
		{ $(GO) test -run '^$$' -bench "$$re" -benchmem -count $(BENCH_COUNT) -benchtime $${t:-$(BENCH_TIME)} $$pkg; \
			echo $$? > bench/.rc; } | tee -a bench/$(BENCH_NAME).txt; \
		test "$$(cat bench/.rc)" = 0; \
	done

## bench-all: every benchmark, -benchmem, $(BENCH_COUNT) runs each, saved for benchstat
bench-all:
	@mkdir -p bench
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) $(BENCH_PKG) | tee bench/$(BENCH_NAME).txt

## benchstat: compare two saved benchmark runs
benchstat: tools
	$(GOBIN)/benchstat $(OLD) $(NEW)

## lint: gofmt, go vet, a cgo-less build, staticcheck, and the stack's checks (dashboards, rules, promtool)
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	$(GOBIN)/staticcheck ./...
	$(GO) test -count=1 ./examples/stack/...

## tools: pinned staticcheck, benchstat and grpcurl (TestGrpcurl, the e2e gRPC step) from the module proxy
tools:
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q '$(STATICCHECK_VERSION:v%=%)' || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/benchstat || $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	@test -x $(GOBIN)/grpcurl || $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

## e2e: real Prometheus, Jaeger and VictoriaLogs on loopback (see examples/stack)
e2e:
	examples/stack/e2e.sh

## e2e-fleet: 50 simulated GPU nodes, sharded Prometheus agents, Thanos, two Alertmanagers (docs/fleet.md)
e2e-fleet:
	examples/stack/e2e-fleet.sh

## stack: build (or find in the cache) Prometheus, promtool, Jaeger and VictoriaLogs; prints their folder
stack:
	examples/stack/build.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
