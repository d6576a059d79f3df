# dgramlab: make test (what CI runs), make demo, make bench.
GO ?= go
GOFILES = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')

.PHONY: all test vet fmt-check demo bench fuzz

all: test

## test: formatting and vet checks, then every test with the race detector.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## demo: the seed scenarios on a built-in virtual LAN.
demo:
	$(GO) run ./cmd/dgramlab demo

## bench: datagram paths side by side (virtual hosts, kernel loopback, Node;
## see BENCHMARKS.md), then every Go benchmark with allocations per op.
bench:
	$(GO) run ./cmd/dgramlab bench
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: each fuzz target for FUZZTIME (default 1m).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzSummarize$$' -fuzztime $(FUZZTIME) ./capture/
