# dgramlab: make test (what CI runs), make demo, make bench.
GO ?= go
GOFILES = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')

.PHONY: all test test-unprivileged vet fmt-check demo bench fuzz

all: test

## test: formatting and vet checks, then every test with the race detector.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...

## test-unprivileged: the same as a user without privileges. As root it
## drops to nobody (setpriv, no capabilities) with its own HOME and Go
## caches under /var/tmp/dgramlab-unprivileged (UNPRIV_DIR), kept for the
## next run; the tests that need root skip, saying why. Not root: make test.
## See scripts/test-unprivileged.sh.
test-unprivileged:
	@GO='$(GO)' MAKE='$(MAKE)' bash scripts/test-unprivileged.sh

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

## fuzz: every fuzz target (each func Fuzz* in a *_test.go) for FUZZTIME
## (default 1m) each. fuzz-short: the same for 5s each (a smoke run; the
## seed corpora already run as plain tests in `make test`). fuzz-short is
## not part of `make test`: with five targets it takes about 35 s with a
## warm build cache (an instrumented build each, plus 5 x 5 s), more on a
## fresh machine.
FUZZTIME ?= 1m
fuzz:
	@set -e; for f in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path './.git/*')); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$t ($$(dirname $$f)) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f)/; \
		done; \
	done

.PHONY: fuzz-short
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

## soak: the long forms, without -race: the load test's (1,000,000
## datagrams among 8 virtual hosts, exact accounting of deliveries and
## drops) and the conservation test's (20,000 seeded random scenarios, each
## datagram's and frame's outcome checked; rerun a failing one with
## DGRAMLAB_SEED=N go test -run 'TestConservation$$' ./integration/).
.PHONY: soak
soak:
	DGRAMLAB_SOAK=1 $(GO) test -count=1 -run TestLoad -timeout 30m -v ./integration/
	DGRAMLAB_SOAK=1 $(GO) test -count=1 -run 'TestConservation$$' -timeout 30m -v ./integration/
