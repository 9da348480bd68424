# octo — build, test and measure.
#
# The first build compiles Kubernetes and containerd (~7 min on 2 cores, ~4 GB
# of Go build cache); later builds take seconds. Keep the cache.

GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
K8S_VERSION := v1.34.4
CTRD_VERSION := v2.2.3
BIN        := bin/octo
ASSET_DIR  := internal/embed/containerd/bin
SHIM       := $(ASSET_DIR)/containerd-shim-runc-v2
PAUSE      := $(ASSET_DIR)/pause
LAUNCHER   := internal/builder/bin/octo-launch

# Stamp versions: the Kubernetes components report them (node version, /version).
LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=34 \
	-X k8s.io/client-go/pkg/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=34 \
	-X github.com/octohq/octo/internal/version.Octo=$(VERSION) \
	-X github.com/octohq/octo/internal/version.Kubernetes=$(K8S_VERSION) \
	-X github.com/octohq/octo/internal/version.Containerd=$(CTRD_VERSION)

.PHONY: all build assets launcher images test e2e e2e-tools check bench bench-workers bench-load bench-scale deps clean

all: build

## build: bin/octo with the containerd shim and pause binary embedded
build: assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/octo

## images: the control-plane image (bin/octo, glibc, the CA bundle; no Docker) as an image
## tarball, dist/octo-$(VERSION).tar; PUSH=registry.example.com/octo:tag pushes it too
## (credentials from ~/.docker/config.json). The same bin/octo gives the same digest.
images: build
	$(GO) run ./scripts/images -octo $(BIN) -out dist/octo-$(VERSION).tar -tag octo:$(VERSION) $(if $(PUSH),-push $(PUSH))

## assets: the binaries octo embeds (built separately, CGO off)
assets: workerd launcher
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(SHIM) github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	$(GO) run ./internal/workerd/compress -in $(SHIM) -out $(SHIM).zst -sha256 $(SHIM).sha256
	rm -f $(SHIM)
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(PAUSE) ./cmd/octo-pause

## launcher: octo-launch, the entrypoint of the workerd image (static, a few seconds)
launcher:
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(LAUNCHER) ./cmd/octo-launch

## workerd: the workerd runtime octo embeds: npm @cloudflare/workerd-linux-64, pinned and
## integrity-checked by tools/workerd/package-lock.json (npm ci), stripped, zstd-compressed.
## Runs only when the output is missing or older than the lockfile.
WORKERD_OUT := internal/workerd/bin
WORKERD_NPM := tools/workerd/node_modules/@cloudflare/workerd-linux-64/bin/workerd
STRIP       ?= strip
.PHONY: workerd
workerd: $(WORKERD_OUT)/workerd.zst $(WORKERD_OUT)/workerd.sha256

$(WORKERD_OUT)/workerd.zst $(WORKERD_OUT)/workerd.sha256 &: tools/workerd/package.json tools/workerd/package-lock.json internal/workerd/compress/main.go
	npm ci --prefix tools/workerd --no-audit --no-fund
	$(STRIP) -o tools/workerd/node_modules/workerd.stripped $(WORKERD_NPM)
	$(GO) run ./internal/workerd/compress -in tools/workerd/node_modules/workerd.stripped \
		-out $(WORKERD_OUT)/workerd.zst -sha256 $(WORKERD_OUT)/workerd.sha256
	rm -f tools/workerd/node_modules/workerd.stripped

## test: unit tests (no root needed; the workerd tests run the embedded runtime)
test: workerd launcher
	$(GO) test ./...

## e2e-tools: the upstream programs TestCluster runs as a user would, built from the
## Go module proxy at pinned versions (their own go.mod, not ours) into bin/e2e:
## helm, versitygw (the external S3) and distribution's registry
E2E_TOOLS := $(abspath bin/e2e)
e2e-tools:
	GOBIN=$(E2E_TOOLS) GOFLAGS= $(GO) install helm.sh/helm/v3/cmd/helm@v3.19.5
	GOBIN=$(E2E_TOOLS) GOFLAGS= $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0
	GOBIN=$(E2E_TOOLS) GOFLAGS= $(GO) install github.com/distribution/distribution/v3/cmd/registry@v3.1.2

## e2e: real `octo up` as root on a temp data dir and non-default ports
## (-parallel 3: TestWrangler runs its three wrangler clients side by side)
e2e: build e2e-tools
	$(GO) test -tags e2e -count=1 -v -parallel 3 -timeout 60m ./e2e/ -octo=$(abspath $(BIN)) -tools=$(E2E_TOOLS)

## check: what CI runs (unit tests, then e2e)
check: test e2e

## bench: measure build, up times, memory; prints figures for docs/benchmarks.md
bench: build
	$(GO) run ./scripts/bench -octo $(BIN)

## bench-workers: upload → serving latency, gateway vs direct workerd, density
bench-workers: build
	$(GO) run ./scripts/bench-workers -octo $(BIN)

## bench-scale: 10 → 100 → 1,000 Workers: bursts, redeploy latency, memory, warm up, 50 accounts
bench-scale: build
	$(GO) run ./scripts/bench-scale -octo $(BIN)

## bench-load: bare workerd vs a minimal proxy vs the gateway, a 1M-request soak, a runaway request
bench-load: build
	$(GO) run ./scripts/bench-load -octo $(BIN)

## deps: install the host packages octo needs (Debian/Ubuntu, as root)
deps:
	apt-get update && apt-get install -y runc iptables containernetworking-plugins iproute2 curl

clean:
	rm -rf bin $(SHIM) $(SHIM).zst $(SHIM).sha256 $(PAUSE) $(LAUNCHER) $(WORKERD_OUT)/workerd.zst $(WORKERD_OUT)/workerd.sha256 tools/workerd/node_modules

## generate: deepcopy code and CRD manifests of api (controller-gen, built
## from the Go module proxy at the version that matches k8s 0.34; its own go.mod, not ours)
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0
.PHONY: generate
generate:
	rm -f internal/crds/api.cf-worker_*.yaml
	$(CONTROLLER_GEN) object crd paths=./api/... output:crd:dir=./internal/crds
	rm -f deploy/octo/crds/api.cf-worker_*.yaml
	cp internal/crds/api.cf-worker_*.yaml deploy/octo/crds/
