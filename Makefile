# The two commands: `make run` serves the demo, `make test` runs every test.
# Both install what they need on a fresh Debian/Ubuntu machine.

SHELL := /bin/bash
CARGO ?= cargo
CONFIG ?= gateway.toml.example

# Build dependencies (samael's xmlsec binding needs libxmlsec1, libxml2,
# openssl and libclang) and what the tests start: nginx and wrk for the
# load harness are installed by benches/load.sh itself; chromium and
# chromedriver drive the real-browser e2e test (tests/e2e/browser.rs);
# xmlsec1 and a venv with pysaml2 run the third-party SP of the interop
# test (tests/e2e/interop.rs, tests/interop/pysaml2_sp.py). The deploy
# kits' checks (tests/e2e/deploy.rs) run haproxy -c, systemd-analyze verify,
# PyYAML and kubernetes-validate (Kubernetes' JSON schemas, packaged) from
# the same venv; the cluster tests start redis-server and haproxy.
# SimpleSAMLphp 1.19 (Debian's package, both SAML roles of
# tests/e2e/simplesamlphp.rs) runs under `php -S`: php-cli, php-xml for its
# DOM. Its Depends `apache2 | httpd` and php's `libapache2-mod-php | …-fpm
# | …-cgi` are met by nginx and php-cgi, requested in the same install so
# that apt takes them for those alternatives and pulls no Apache (it
# installs Recommends: php-cli, which is wanted anyway). php-sqlite3 backs
# its `store.type = 'sql'` (sqlite) in the SOAP logout test: only with an
# SQL store does its SP offer SOAP Single Logout and find the session of a
# LogoutRequest that comes without the browser.
BUILD_PACKAGES := build-essential pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev clang
TEST_PACKAGES := $(BUILD_PACKAGES) chromium chromium-driver xmlsec1 python3-venv openssl haproxy redis-server systemd \
  nginx php-cli php-cgi php-xml php-sqlite3 simplesamlphp
PYSAML2_VERSION := 7.5.5
PYYAML_VERSION := 6.0.3
KUBERNETES_VALIDATE_VERSION := 1.37.0
PYENV := target/pyenv
# Where cargo puts the binary: CARGO_TARGET_DIR when the caller sets one.
BIN := $(or $(CARGO_TARGET_DIR),target)/release/portcullis
export PORTCULLIS_PYTHON := $(CURDIR)/$(PYENV)/bin/python

.PHONY: run test build deps test-deps lint bench certs toolchain fuzz fuzz-deps fuzz-seeds

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "portcullis: cargo not found; install Rust from https://rustup.rs (stable 1.88 or newer)" >&2; exit 1; }

deps: toolchain
	@deploy/install-packages.sh $(BUILD_PACKAGES)

test-deps: toolchain
	@deploy/install-packages.sh $(TEST_PACKAGES)
	@$(PYENV)/bin/python -c 'import saml2, yaml, kubernetes_validate, importlib.metadata as m; \
	    assert m.version("pysaml2") == "$(PYSAML2_VERSION)"; \
	    assert m.version("PyYAML") == "$(PYYAML_VERSION)"; \
	    assert m.version("kubernetes-validate") == "$(KUBERNETES_VALIDATE_VERSION)"' 2>/dev/null || \
	  { python3 -m venv $(PYENV) && $(PYENV)/bin/pip install -q pysaml2==$(PYSAML2_VERSION) \
	      pyyaml==$(PYYAML_VERSION) kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION); }

build: deps
	$(CARGO) build --release -p portcullis

certs-dev/localhost.pem:
	$(CARGO) run --release -q -p portcullis -- dev-certs certs-dev

certs: certs-dev/localhost.pem

run: build certs
	$(BIN) check --config $(CONFIG)
	@echo "Demo: https://127.0.0.1:8443/ and https://127.0.0.1:9443/ (CA: certs-dev/ca.pem); metrics: http://127.0.0.1:9901/metrics"
	$(BIN) run --config $(CONFIG)

# cargo prints one "test result" line per test binary; the last line here
# sums them so a reader (or CI) sees the whole run at a glance.
test: test-deps
	@mkdir -p target; set -o pipefail; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test-output.log; status=$$?; \
	awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	     END { printf "workspace tests: %d passed, %d failed\n", p, f }' target/test-output.log; exit $$status

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build
	bash benches/load.sh
	cargo bench -p portcullis --bench sso_roundtrip
	cargo bench -p portcullis-saml --bench sso

# Fuzzing (fuzz/README.md): every target for FUZZ_SECONDS each, one at a
# time, one line of figures per target; exits 1 on a finding. Needs nightly
# and cargo-fuzz, installed here when missing. `make test` replays the
# seeds and every past finding on stable.
FUZZ_SECONDS ?= 10

fuzz-deps: deps
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz

fuzz: fuzz-deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

# Rewrites fuzz/seeds/ from the crates' own builders.
fuzz-seeds: deps
	$(CARGO) run -q -p portcullis-fuzz-entries --bin fuzz-seeds
