# bosun: the project's vocabulary. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/bosun
IMAGES := build/images/bosun-hello-v1.tar build/images/bosun-hello-v2.tar
DEMO_DIR ?= /tmp/bosun-demo
export GOFLAGS ?= -mod=mod

.PHONY: help build images test test-short bench bench-cron bench-scale bench-kubeproxy soak-ha demo lint deps clean screenshots

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/bosun
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/bosun

images: $(IMAGES) ## build the example app as OCI archives under build/images/

build/images/bosun-hello-%.tar: $(shell find examples/hello/app examples/mkimage -name '*.go')
	@mkdir -p build/images build/bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$*" -o build/bin/bosun-hello-$* ./examples/hello/app
	$(GO) run ./examples/mkimage -bin build/bin/bosun-hello-$* -path /bosun-hello -ref localhost/bosun-hello:$* -out $@

deps: ## install the system packages bosun needs (Debian, as root)
	@bash scripts/install-deps.sh

test: ## run every test (unit, integration and end to end; needs root)
	@bash scripts/install-deps.sh test
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	@bash scripts/check-imports.sh
	$(GO) test -race -timeout 24m -parallel 4 ./...

test-short: ## unit tests only (no containerd, no root)
	$(GO) test -short ./...

bench: deps ## run the benchmarks recorded in BENCHMARKS.md (installs nginx: install-deps.sh bench)
	@bash scripts/install-deps.sh bench
	$(GO) test -run '^$$' -bench . -benchmem ./scheduler ./reconciler ./preview ./dns ./manifest ./ipalloc
	$(GO) test -run '^$$' -bench 'CommitToReady|RevertByWebhook' -benchtime 5x ./e2e
	$(GO) test -run '^$$' -bench PlanRef1000Objects -benchtime 10x ./e2e
	$(GO) test -run '^$$' -bench InitContainers -benchtime 10x ./nodes
	$(GO) test -run '^$$' -bench 'Sync|PortsBuilder' -benchtime 20x ./proxy
	$(GO) test -run '^$$' -bench Runner_readyToReachable -benchtime 300x ./proxy
	$(GO) test -run '^$$' -bench ServiceLatency -benchtime 5000x ./e2e
	$(GO) test -run '^$$' -bench 'Canary' -benchtime 5x ./e2e
	$(GO) test -run '^$$' -bench Dashboard_thousandPods -benchtime 5x ./e2e
	$(GO) test -run '^$$' -bench 'Keyring|SealOps|1kSecrets' -benchmem -count 5 ./store
	$(GO) test -run '^$$' -bench 'Verify|Decrypt|Load_100|Tokens_lookup|Join' -benchmem -count 5 ./signature ./sopsfile ./api ./join
	$(GO) test -run '^$$' -bench PodToPod -benchtime 2s -count 3 ./podnet
	BOSUN_BENCH_INGRESS=1 $(GO) test -count 1 -run TestIngressLoad -bench 'Match|ServeHTTP' -benchmem -v ./ingress
	$(GO) test -run '^$$' -bench Plan_1kNodes -benchmem ./podcidr

bench-cron: deps ## CronJob schedule accuracy over 20 minutes (p50/p99 in BENCHMARKS.md)
	BOSUN_CRON_ACCURACY=20 $(GO) test -run TestCronScheduleAccuracy -v -timeout 40m ./e2e

BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

bench-scale: ## 1,000 simulated nodes, 30,000 pods: 5 runs, medians with benchstat (BENCHMARKS.md)
	@mkdir -p build
	$(GO) test -run '^$$' -bench Scale -benchtime 1x -count $${COUNT:-5} -timeout 180m ./e2e | tee build/bench-scale.txt
	GOFLAGS= $(GO) run $(BENCHSTAT) build/bench-scale.txt

bench-kubeproxy: ## bosun's Service rules against kube-proxy's nftables proxier, 1,000 Services x 10 endpoints: 5 runs, benchstat (separate module bench/kubeproxy)
	@bash scripts/install-deps.sh test
	@mkdir -p build
	cd bench/kubeproxy && $(GO) test -count 1 -run TestSameDataPath .
	set -o pipefail; cd bench/kubeproxy && $(GO) test -run '^$$' -bench . -count $${COUNT:-5} -timeout 60m . | tee ../../build/bench-kubeproxy.txt
	GOFLAGS= $(GO) run $(BENCHSTAT) -col /engine build/bench-kubeproxy.txt

soak-ha: ## leader failover on 3 servers with a 3-member etcd: SIGKILL and partition, 20 runs each, p50 and worst (BENCHMARKS.md)
	BOSUN_HA_SOAK_RUNS=20 $(GO) test -count=1 -run TestHASoak -v -timeout 60m ./e2e

demo: deps build images ## run bosun on the bundled example repository
	@bash scripts/demo.sh

screenshots: ## take the web dashboard's screenshots into docs/screenshots/ (headless Chromium; needs root)
	@bash scripts/install-deps.sh test
	BOSUN_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestDashboard_liveInBrowser' -timeout 15m ./e2e

lint: ## go vet, gofmt and the import boundaries
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@bash scripts/check-imports.sh

clean: ## remove build outputs
	rm -rf bin build
