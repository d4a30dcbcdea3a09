# Quick start: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test python-guest world bench cluster clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/airssys demo

# The Python guest is built with componentize-py into build/guests/ (cached by source hash).
python-guest: $(STAMP)
	$(BIN)/python scripts/build_python_guest.py

# ruff first: a finding fails the run before the suite starts.
test: $(STAMP) python-guest
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Every benchmark at the size that takes under five minutes (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/airssys bench all --out build/bench.json

# A local nats-server with JetStream on 127.0.0.1:4222 (store build/nats) for a cluster
# of nodes on this machine; Ctrl-C stops it.
cluster: $(STAMP)
	$(BIN)/airssys cluster up

# Regenerate the reference world component the host checks guests against.
world: $(STAMP)
	mkdir -p build
	$(BIN)/wasm-tools component embed wit --dummy -o build/world-core.wasm
	$(BIN)/wasm-tools component new build/world-core.wasm -o airssys_actors/_host/world.wasm

clean:
	rm -rf $(VENV) build .pytest_cache
