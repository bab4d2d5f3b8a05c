# skiff — see README.md. Targets are meant for a fresh Debian machine with Go 1.26.
GO       ?= go
BIN      := bin/skiff
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DATA_DIR ?= skiff-dev
# Two cores: never run more than two test binaries at once.
TESTFLAGS ?= -p 2 -count=1 -timeout 20m

.PHONY: build test bench lint run clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/skiff

# Everything CI runs: vet and format checks, every package's tests, with the race detector
# on the concurrent core (store, Raft, API, verifiers).
test: lint build
	$(GO) test $(TESTFLAGS) -race ./fsm/... ./raft/... ./gossip/... ./master/... ./test/verify/...
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /fsm -e /raft -e /gossip -e /master -e /test/verify)

# Benchmarks print their figures and ratios against baselines measured in the same run.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./test/bench/

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# A local HA cluster of three masters and an agent in the foreground, with drills allowed
# and a 3-replica demo Deployment; Ctrl-C stops it.
run: build
	./$(BIN) dev --data-dir $(DATA_DIR) --allow-drills --demo

clean:
	rm -rf bin $(DATA_DIR)
