# clawbridge: every command the README names. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: deps build release run demo test unit fmt fmt-check clippy e2e helm-check prom-check image image-test bench fuzz soak clean

deps:            ## system packages the build needs (cmake)
	scripts/ensure-deps.sh cmake

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release --workspace

run: release     ## clawbridge from env / conf, in front of a real gateway
	./target/release/clawbridge --config conf/clawbridge.yaml

demo: release    ## clawbridge in front of the in-repo demo gateway; no OpenClaw needed
	scripts/demo.sh

test: deps fmt-check clippy  ## the test command: lint, unit + integration tests, real Prometheus scrape, chart checks
	$(CARGO) test --workspace --all-targets
	scripts/prom-check.sh
	scripts/check-helm.sh

unit: deps
	$(CARGO) test --workspace --lib

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

e2e: release     ## fidelity suite against the real gateway (../shared/openclaw-real)
	e2e/run.sh

helm-check:
	scripts/check-helm.sh

prom-check:      ## a real Prometheus server scrapes clawbridge; promtool checks the exposition
	scripts/prom-check.sh

image: release   ## OCI image FROM scratch, offline: target/image/clawbridge.oci.tar (needs root)
	scripts/ensure-deps.sh umoci skopeo
	scripts/build-image.sh

image-test: image ## unpack the image, run it read-only as uid 65532 in a chroot: --check + one chat request
	scripts/ensure-deps.sh jq
	scripts/image-test.sh

bench: release   ## BENCHMARKS.md figures, PASS/FAIL per target
	bench/run.sh

FUZZ_SECS ?= 60

fuzz:            ## every cargo-fuzz target for FUZZ_SECS each (stable Rust via RUSTC_BOOTSTRAP=1)
	scripts/fuzz.sh $(FUZZ_SECS)

soak: deps       ## ~2.5 min of streams, random disconnects, one gateway restart; prints a report
	scripts/soak.sh

clean:
	$(CARGO) clean
