# One command per task. `make serve` and `make test` each do all the set-up they need on a fresh
# machine (venv, llama-cpp-python built portably, MCP test servers) and are fast once it is done.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8100
HOST   ?= 127.0.0.1

# The default native llama.cpp build crashes (SIGSEGV in the AMX kernel) on some x86 CPUs;
# this portable build runs everywhere with AVX2.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
                    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

# Installs come from hashed lock files (scripts/lock.sh writes them from pyproject.toml), so a new
# machine gets exactly the versions CI ran, and a tampered or re-uploaded release is refused.
RUNTIME_LOCK := requirements/runtime.lock
TEST_LOCK    := requirements/test.lock
RUNTIME_STAMP := $(VENV)/.runtime-$(shell cat pyproject.toml $(RUNTIME_LOCK) | sha256sum | cut -c1-16)
TEST_STAMP    := $(VENV)/.test-$(shell cat pyproject.toml $(TEST_LOCK) | sha256sum | cut -c1-16)

.PHONY: install install-test lock mcp-servers test-clients open-webui browser redis openssl serve test lint check bench clean

$(RUNTIME_STAMP): pyproject.toml $(RUNTIME_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --require-hashes -r $(RUNTIME_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.runtime-*
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP) $(TEST_LOCK)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --require-hashes -r $(TEST_LOCK)
	rm -f $(VENV)/.test-*
	touch $@

install: $(RUNTIME_STAMP)

install-test: $(TEST_STAMP)

# After changing dependencies in pyproject.toml: rewrite both lock files (needs uv).
lock:
	bash scripts/lock.sh

mcp-servers:
	bash scripts/install-mcp-servers.sh

test-clients:
	bash scripts/install-test-clients.sh

# Open WebUI in its own venv (.test-clients/open-webui, ~3 GB with CPU torch) for the real-frontend
# smoke test tests/clients/test_open_webui.py: ~2 min the first time, a no-op after that.
open-webui:
	bash scripts/install-open-webui.sh

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	bash scripts/install-browser.sh

# redis-server (Debian package) for the session-store tests; the suite runs its own on a free port.
redis:
	bash scripts/install-redis.sh

# openssl (Debian package): the HTTPS tests make a self-signed certificate with it.
openssl:
	bash scripts/install-openssl.sh

serve: install
	$(BIN)/python -m atoll --server --host $(HOST) --port $(PORT) $(if $(AGENT),--agent $(AGENT))

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# Most tests wait on real processes rather than the CPU, so the suite runs on PYTEST_WORKERS workers
# (pytest-xdist; each test file on one worker, the Ray tests together: tests/conftest.py).
PYTEST_WORKERS ?= 3

# With PYTHONDONTWRITEBYTECODE set (some images set it), pytest rewrites the asserts of every module of
# its plugins (hypothesis, schemathesis...: ~740 modules) again in each worker: collecting took 35 s of
# CPU per worker instead of 17. The suite lets it keep its rewritten bytecode.
test: install-test mcp-servers test-clients open-webui browser redis openssl lint
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

check: test

bench: install-test
	bash scripts/install-bench-tools.sh
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mcp-servers .test-clients
