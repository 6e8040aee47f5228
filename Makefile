# mtlsproxy: forward proxy that adds client certificates (mutual TLS).

GO      ?= go
BIN     ?= bin/mtlsproxy
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test demo bench fuzz lint clean

all: build

## build: compile bin/mtlsproxy
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mtlsproxy

## test: vet, then every test with the race detector (includes the e2e suite)
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## demo: run the loopback demonstration in examples/demo.sh
demo:
	bash examples/demo.sh

## bench: mtlsproxy against nginx and HAProxy side by side (bench/run.sh; QUICK=1
##        for a short run; needs root to install packages), then the Go benchmarks
##        and the binary's memory with 10,000 certificates (bench/rss)
bench: build
	MTLSPROXY_BIN=$(abspath $(BIN)) bash bench/run.sh
	$(GO) test -run='^$$' -bench='LoadFile|ReloadUnchanged' -benchmem -benchtime=5x ./certconfig/
	$(GO) test -run='^$$' -bench='Route' -benchmem ./certconfig/
	$(GO) test -run='^$$' -bench=. -benchmem ./proxy/
	$(GO) run ./bench/rss -bin $(BIN) -out bench/rss.md

## fuzz: run each fuzz target for FUZZTIME (seed corpora already run in make test)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./certconfig/
	$(GO) test -run='^$$' -fuzz='^FuzzBuildCertificate$$' -fuzztime=$(FUZZTIME) ./certconfig/
	$(GO) test -run='^$$' -fuzz='^FuzzParseHostIP$$' -fuzztime=$(FUZZTIME) ./proxy/egress/

## lint: fail on files gofmt would change, then vet
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would change:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...

## clean: remove build output
clean:
	rm -rf bin
