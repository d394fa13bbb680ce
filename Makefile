# peersync: build, test, demo, bench. The one entry point for people and CI.
CARGO ?= cargo
# A venv made from Debian's python3, which (unlike pyenv's) can load SQLite extensions.
VENV := .venv
PYTHON := $(VENV)/bin/python
EXT_SO := dist/peersync.so
# What cargo names the cdylib: libpeersync.so, libpeersync.dylib on macOS (dist/ keeps the .so name).
LIB_SUFFIX := $(if $(filter Darwin,$(shell uname -s)),dylib,so)
# A test build of the extension: also registers sync_debug_panic() (the panic-guard tests).
TEST_EXT_SO := target/test-ext/peersync.so

.PHONY: all build ext ext-test sidecar agent test-agent dist lint mutants test test-rust test-sql test-python test-node test-sidecar test-reliability test-dist reliability fuzz demo bench clean

all: build

build: ext sidecar

ext:
	$(CARGO) build --release --manifest-path ext/Cargo.toml
	mkdir -p dist
	# copy then rename: a process that has the old file loaded keeps its mapping intact
	cp ext/target/release/libpeersync.$(LIB_SUFFIX) $(EXT_SO).tmp && mv -f $(EXT_SO).tmp $(EXT_SO)

$(TEST_EXT_SO): ext
	$(CARGO) build --release --manifest-path ext/Cargo.toml --features debug-panic
	mkdir -p $(dir $(TEST_EXT_SO))
	cp ext/target/release/libpeersync.$(LIB_SUFFIX) $(TEST_EXT_SO).tmp && mv -f $(TEST_EXT_SO).tmp $(TEST_EXT_SO)
	# put the release build back where cargo left it, so the next `make ext` has nothing to do
	$(CARGO) build --release --manifest-path ext/Cargo.toml

ext-test: $(TEST_EXT_SO)

sidecar:
	$(CARGO) build --release -p peersync
	mkdir -p dist
	cp target/release/peersync dist/peersync.tmp && mv -f dist/peersync.tmp dist/peersync

# The phone's library, both ways (README, "The phone: peersync-agent"): with its own SQLite
# (target/release/libpeersync_agent.{a,so}; header agent/include/peersync.h), and linked to the
# system's SQLite (target/agent-system/release/, what tests/agent loads through ctypes beside
# Python's sqlite3); and the C program that tests the ABI (tests/agent/test_c_abi.py runs it).
CC ?= cc
AGENT_A := target/release/libpeersync_agent.a
AGENT_C_TEST := target/agent-c/agent_test
agent:
	$(CARGO) build --release -p peersync-agent
	$(CARGO) build --release -p peersync-agent --no-default-features --target-dir target/agent-system
	mkdir -p $(dir $(AGENT_C_TEST))
	$(CC) -Wall -Wextra -Werror -I agent/include agent/tests/c/agent_test.c $(AGENT_A) -lpthread -ldl -lm -o $(AGENT_C_TEST)

# The packages, into dist/: the Python wheel (peersync-<version>-py3-none-manylinux_*.whl) and
# the npm tarball (peersync-<version>.tgz), both holding dist/peersync.so and dist/peersync.
dist: build
	bash packages/build.sh

test: lint build test-rust test-sql test-python test-node test-sidecar test-agent test-reliability test-dist
	@echo "make test: all suites passed"

# Style that is checked: rustfmt and clippy (warnings are errors) over every crate.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path ext/Cargo.toml --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path ext/Cargo.toml --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

# Mutation testing of the engine's rules with core's own tests as the oracle; results in
# target/mutants/. The merge rules run the convergence property tests too (MUTANTS_CASES cases
# per mutant); the other files skip them (their own tests pin them, and they are slow).
# .cargo/mutants.toml lists the mutants explained as equivalent.
MUTANTS_CASES ?= 8
MUTANTS_EDGES := core/src/exchange/sign.rs core/src/exchange/verify.rs core/src/exchange/apply.rs \
	core/src/exchange/prepare.rs core/src/trust/quarantine.rs core/src/wire/hash.rs core/src/wire/batch.rs \
	core/src/wire/signature.rs
MUTANTS_MERGE := core/src/merge/merger.rs core/src/merge/remote.rs core/src/merge/rules.rs
mutants:
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants@27.1.0
	mkdir -p target/mutants
	$(CARGO) mutants --package peersync-core $(addprefix -f ,$(MUTANTS_EDGES)) -o target/mutants/edges -- -- --skip converges_ || true
	PEERSYNC_CASES=$(MUTANTS_CASES) $(CARGO) mutants --package peersync-core $(addprefix -f ,$(MUTANTS_MERGE)) -o target/mutants/merge || true
	@cat target/mutants/*/mutants.out/missed.txt 2>/dev/null | sed 's/^/missed: /'; echo "make mutants: results in target/mutants/"

test-rust:
	$(CARGO) test --release --workspace

test-sql: ext ext-test
	bash tests/sql/run.sh

$(VENV)/stamp: tests/requirements.txt
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PYTHON) -m pip install -q -r tests/requirements.txt
	touch $@

test-python: build ext-test $(VENV)/stamp
	$(PYTHON) -m pytest -q tests/python

test-sidecar: build $(VENV)/stamp
	$(PYTHON) -m pytest -q tests/sidecar

# The phone's library through its C ABI: from C, from Python ctypes, and the phone scenario.
# The agent's dependencies leave out the CLI's crates (the sidecar's `cli` feature).
test-agent: build agent $(VENV)/stamp
	! $(CARGO) tree -p peersync-agent -e normal,build | grep -E ' (clap|tracing-subscriber|qrcode|indicatif) v'
	@# The build rewrote the header from agent/src: the committed one must be that one.
	git diff --exit-code -- agent/include/peersync.h
	$(PYTHON) -m pytest -q tests/agent

# The short reliability suite (chaos, crashes, disk full, hostile input); its matrix goes to target/reliability/.
test-reliability: build $(VENV)/stamp
	$(PYTHON) -m pytest -q tests/reliability

# The long variant, which rewrites RELIABILITY.md (commit it).
reliability: build $(VENV)/stamp
	PEERSYNC_LONG=1 PEERSYNC_RELIABILITY_OUT=$(CURDIR)/RELIABILITY.md $(PYTHON) -m pytest -q tests/reliability

# Every fuzz target for FUZZ_SECONDS (default 600) each; writes fuzz/results.json (see fuzz/README.md).
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

test-node: ext ext-test
	bash tests/node/run.sh

# The packages installed fresh (a new venv, a new npm project) and used as apps use them.
test-dist: dist
	bash tests/dist/run.sh

demo: build
	bash sql/demo.sh

bench: build agent $(VENV)/stamp
	$(CARGO) run --release -p peersync-bench
	$(PYTHON) tests/agent/bench_agent.py
	$(PYTHON) tests/sidecar/bench_e2e.py
	$(PYTHON) tests/sidecar/bench_latency.py
	$(PYTHON) tests/sidecar/bench_big.py
	$(PYTHON) tests/sidecar/bench_storage.py
	$(PYTHON) tests/sidecar/bench_join.py

clean:
	rm -rf $(VENV)
	$(CARGO) clean
	$(CARGO) clean --manifest-path ext/Cargo.toml
	rm -rf dist
