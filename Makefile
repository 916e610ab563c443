# Entry points for users and developers. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: demo
demo: ## Guided tour: local control plane, upstash-sim, a rotation you can watch
	hack/demo.sh

.PHONY: test
test: ## Whole suite: fmt, clippy, unit and integration tests on a real control plane
	hack/test.sh

SIZE ?= ci
.PHONY: chaos
chaos: ## Fault campaign on the real operator; SIZE=full (1,000+ faults) writes docs/reliability.md
	SIZE=$(SIZE) hack/chaos.sh

.PHONY: testenv
testenv: ## Build (or find in the cache) the control plane, node binaries, kubectl, helm
	@hack/testenv/build.sh

NODE ?= 0
.PHONY: cluster-up
cluster-up: ## Start the local control plane (NODE=1: and a worker node); prints the exports to use it
	@NODE=$(NODE) hack/testenv/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and node, and remove all they created
	@hack/testenv/down.sh

.PHONY: build
build: ## Debug build of both binaries
	cargo build --locked --workspace --bins

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

.PHONY: bench
bench: ## The operator at scale, SIZE=1000 (default) or 10000: writes docs/benchmarks.md
	BENCH_SIZE=$(if $(filter ci,$(SIZE)),1000,$(SIZE)) hack/bench.sh

.PHONY: bench-peers
bench-peers: ## The operator and External Secrets Operator side by side, SIZE=1000 (default) or 10000
	BENCH_PEERS=1 BENCH_SIZE=$(if $(filter ci,$(SIZE)),1000,$(SIZE)) hack/bench.sh

.PHONY: release
release: ## Static release binaries (the ones the image contains) in target/x86_64-unknown-linux-musl/release
	hack/release.sh

.PHONY: image
image: ## Operator image from the Dockerfile (podman); imported into the local node if one runs
	@hack/image/build.sh

.PHONY: images
images: ## Test images for the node (pause, consumer, node-consumer); imported likewise
	@hack/image/test-images.sh

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types
	rm -f crds/*.yaml charts/upstash-rotator/crd/*.yaml
	cargo run --locked --quiet --bin upstash-rotator -- crd --dir crds
	cp crds/*.yaml charts/upstash-rotator/crd/
