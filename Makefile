# Weir — the two commands a newcomer needs are `make run` and `make test`; the rest is for developers.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
BIN       := $(CURDIR)/bin
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
BENCHCOUNT ?= 6

# Pinned versions of the real tools the tests and linters use, installed once into ./bin.
PROMETHEUS_VERSION    := v0.316.0
GOLANGCI_LINT_VERSION := v2.15.0
BENCHSTAT_VERSION     := v0.0.0-20260908200009-22c9c6c9d4da
VERSITYGW_VERSION     := v1.8.0
THANOS_VERSION        := v0.42.5
# Thanos needs a newer Go than the project and has replace directives: it is built as a tools module.
THANOS_GOTOOLCHAIN    := go1.26.10
# VictoriaMetrics single-node: the performance anchor of bench-system (not used by the tests).
VICTORIAMETRICS_VERSION := v1.151.0

export WEIR_PROMETHEUS := $(BIN)/prometheus
export WEIR_PROMTOOL := $(BIN)/promtool
export WEIR_VERSITYGW := $(BIN)/versitygw
export WEIR_THANOS := $(BIN)/thanos

.PHONY: all build run run-ring run-stack dashboards bench-system bench-system-tenants test test-unit fuzz bench bench-compare lint fmt tools docker docker-s3 docker-test e2e clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/weir ./cmd/weir

## run: start Weir's embedded default (receive on :19291, metrics on :10902, data in ./data).
run:
	$(GO) run ./cmd/weir

## run-ring: three nodes on this machine, each router and ingester, replication factor 3 (see deploy/local/ring.sh).
run-ring:
	bash deploy/local/ring.sh

## run-stack: two Prometheus servers, a Weir ring behind a router, an S3 bucket and Thanos Store, Compactor
## and Query, all on this machine (see deploy/local/stack.sh and docs/stack.md).
run-stack: tools
	bash deploy/local/stack.sh

## dashboards: regenerate Weir's Grafana dashboard (deploy/dashboards/weir.json and the chart's copy) from Go.
dashboards:
	$(GO) generate ./deploy/dashboards

## test: install the pinned test tools (once), run every test with the race detector, and a short fuzz run.
test: tools
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

## test-unit: the tests alone, without installing tools (tests that need a missing tool skip loudly).
test-unit:
	$(GO) test -race -count=1 ./...

## fuzz: run every fuzz target for FUZZTIME each (seed corpora live in */testdata/fuzz); a found input fails,
## Go's own end-of-fuzztime race (go.dev/issue/75804) is retried once and reported (scripts/fuzz.sh).
fuzz:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME)

## bench: micro-benchmarks of the hot paths; compare two runs with `make bench-compare OLD=a.txt NEW=b.txt`.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) -count=$(BENCHCOUNT) ./... | tee bench.txt

bench-compare: $(BIN)/benchstat
	$(BIN)/benchstat $(OLD) $(NEW)

## bench-system: whole receivers under `weir bench` (weir, a 3-node weir ring, Prometheus, Thanos Receive,
## VictoriaMetrics): samples/s, CPU-s per 1M samples, peak RSS per series. SERIES and DURATION adjust the load;
## CHURN replaces that many series per minute during the measurement (adds new series/s).
SERIES   ?= 100000
DURATION ?= 30s
CHURN    ?= 0
bench-system: tools $(BIN)/victoria-metrics
	bash scripts/bench-system.sh --series $(SERIES) --duration $(DURATION) --churn $(CHURN)

## bench-system-tenants: the many-tenants case of bench-system (issue #23): TENANTS tenants of
## TENANT_SERIES series each, weir against Thanos Receive; adds peak RSS per tenant, tenants created per
## second by their first writes, and SIGTERM-to-exit time (flush and ship of every tenant).
TENANTS       ?= 2000
TENANT_SERIES ?= 100
bench-system-tenants: tools
	bash scripts/bench-system.sh --tenants $(TENANTS) --series $$(( $(TENANTS) * $(TENANT_SERIES) )) --warmup 60s --duration $(DURATION) --receivers "weir thanos"

## lint: gofmt, go vet, go mod tidy check and golangci-lint (pinned).
lint: $(BIN)/golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(BIN)/golangci-lint run ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tools: $(BIN)/prometheus $(BIN)/promtool $(BIN)/versitygw $(BIN)/thanos

# Each tool is rebuilt only when the binary is missing or was built from another version.
$(BIN)/prometheus: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "prometheus/prometheus[[:space:]]*$(PROMETHEUS_VERSION)"; then \
	  echo "installing prometheus $(PROMETHEUS_VERSION) into $(BIN) (a few minutes, once)"; \
	  GOBIN=$(BIN) $(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION); \
	fi

$(BIN)/promtool: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "prometheus/prometheus[[:space:]]*$(PROMETHEUS_VERSION)"; then \
	  GOBIN=$(BIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION); \
	fi

$(BIN)/versitygw: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "versity/versitygw[[:space:]]*$(VERSITYGW_VERSION)"; then \
	  echo "installing versitygw $(VERSITYGW_VERSION) (S3 server for tests) into $(BIN)"; \
	  GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

$(BIN)/thanos: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "thanos-io/thanos[[:space:]]*$(THANOS_VERSION)"; then \
	  echo "building thanos $(THANOS_VERSION) into $(BIN) (several minutes, once)"; \
	  rm -rf $(BIN)/.thanos-build && mkdir -p $(BIN)/.thanos-build && cd $(BIN)/.thanos-build && \
	  export GOTOOLCHAIN=$(THANOS_GOTOOLCHAIN) && \
	  printf 'module thanostool\n\ngo 1.26.10\n\n' > go.mod && \
	  $(GO) mod download -json github.com/thanos-io/thanos@$(THANOS_VERSION) >/dev/null && \
	  sed -n '/^replace (/,/^)/p' "$$($(GO) env GOMODCACHE)/cache/download/github.com/thanos-io/thanos/@v/$(THANOS_VERSION).mod" >> go.mod && \
	  $(GO) get -tool github.com/thanos-io/thanos/cmd/thanos@$(THANOS_VERSION) && \
	  $(GO) build -tags netgo,slicelabels -o $@ github.com/thanos-io/thanos/cmd/thanos; \
	fi

$(BIN)/victoria-metrics: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "VictoriaMetrics/VictoriaMetrics[[:space:]]*$(VICTORIAMETRICS_VERSION)"; then \
	  echo "installing victoria-metrics $(VICTORIAMETRICS_VERSION) into $(BIN) (a few minutes, once)"; \
	  GOBIN=$(BIN) $(GO) install github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$(VICTORIAMETRICS_VERSION); \
	fi

$(BIN)/golangci-lint: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "golangci-lint/v2[[:space:]]*$(GOLANGCI_LINT_VERSION)"; then \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(BIN)"; \
	  GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

$(BIN)/benchstat: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "golang.org/x/perf[[:space:]]*$(BENCHSTAT_VERSION)"; then \
	  GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION); \
	fi

FORCE:

## docker: a FROM-scratch image from the static binary and the host's CA certificates (no base image needed).
docker: build
	rm -rf $(BIN)/docker && mkdir -p $(BIN)/docker/data
	cp $(BIN)/weir $(BIN)/docker/weir
	cp /etc/ssl/certs/ca-certificates.crt $(BIN)/docker/ca-certificates.crt
	docker build -t weir:dev -f Dockerfile $(BIN)/docker

## docker-s3: the S3 server of the container tests, versitygw $(VERSITYGW_VERSION) built static (CGO_ENABLED=0)
## into bin/docker-s3 and packed FROM scratch as the image weir-s3:dev (no registry needed).
S3_DOCKERFILE := FROM scratch\nCOPY versitygw /versitygw\nCOPY --chown=65534:65534 data /data\nUSER 65534:65534\nEXPOSE 7070\nENTRYPOINT ["/versitygw"]\n
docker-s3:
	@if ! $(GO) version -m $(BIN)/docker-s3/versitygw 2>/dev/null | grep -q "versity/versitygw[[:space:]]*$(VERSITYGW_VERSION)" || \
	    ! $(GO) version -m $(BIN)/docker-s3/versitygw | grep -q "CGO_ENABLED=0"; then \
	  echo "building a static versitygw $(VERSITYGW_VERSION) into $(BIN)/docker-s3"; \
	  mkdir -p $(BIN)/docker-s3 && CGO_ENABLED=0 GOBIN=$(BIN)/docker-s3 $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi
	mkdir -p $(BIN)/docker-s3/data
	printf '$(S3_DOCKERFILE)' > $(BIN)/docker-s3/Dockerfile
	docker build -t weir-s3:dev $(BIN)/docker-s3

## docker-test: build the images (and Prometheus, the retrying sender) and run the container tests (tag e2e).
docker-test: docker docker-s3 $(BIN)/prometheus
	WEIR_IMAGE=weir:dev WEIR_S3_IMAGE=weir-s3:dev $(GO) test -tags e2e -count=1 -v -timeout 40m -run 'Docker' ./e2e/

## e2e: the container failure tests of docs/reliability.md (same as docker-test).
e2e: docker-test

clean:
	rm -rf $(BIN)/weir $(BIN)/docker $(BIN)/docker-s3 bench.txt

# --- Kubernetes deployment (deploy/helm/weir, deploy/kubernetes, deploy/rules) ---
HELM_VERSION := v3.22.0

.PHONY: deploy-check deploy-render e2e-k8s

## deploy-check: helm lint --strict and helm template for every deploy/helm/weir/ci values file, the Go
## test of the rendered objects and plain manifests (./deploy), and promtool test rules on deploy/rules.
deploy-check: $(BIN)/helm $(BIN)/promtool $(BIN)/thanos
	@for f in deploy/helm/weir/ci/*.yaml; do \
	  echo "helm lint --strict / helm template -f $$f"; \
	  $(BIN)/helm lint --strict deploy/helm/weir -f $$f >/dev/null; \
	  $(BIN)/helm template weir deploy/helm/weir --namespace weir -f $$f >/dev/null; \
	done
	$(BIN)/promtool check rules deploy/rules/weir.rules.yml
	$(BIN)/promtool test rules deploy/rules/weir.rules.test.yml
	WEIR_HELM=$(BIN)/helm $(GO) test -count=1 ./deploy/

## e2e-k8s: the chart on a real single-node Kubernetes built from source (k8s.io/kubernetes v1.37.2, etcd
## v3.7.3, CoreDNS v1.15.0; binaries cached in $${XDG_CACHE_HOME:-~/.cache}/weir-k8s, 38 CPU-min cold): bring the
## cluster up (root; apt packages containerd and containernetworking-plugins), install the chart, run the
## TestK8s* tests of ./e2e, tear everything down (see e2e/k8s/ and docs/deploy.md).
e2e-k8s: docker $(BIN)/helm
	HELM=$(BIN)/helm WEIR_BINARY=$(BIN)/weir bash e2e/k8s/run.sh

## deploy-render: re-render the plain manifests (deploy/kubernetes/weir.yaml) from the chart's defaults.
deploy-render: $(BIN)/helm
	$(BIN)/helm template weir deploy/helm/weir --namespace weir > deploy/kubernetes/weir.yaml

$(BIN)/helm: FORCE
	@if ! $(GO) version -m $@ 2>/dev/null | grep -q "helm.sh/helm/v3[[:space:]]*$(HELM_VERSION)"; then \
	  echo "installing helm $(HELM_VERSION) into $(BIN)"; \
	  GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	fi
