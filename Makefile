# mpath — the README's two commands: `make setup` then `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: the rig (tgt, iproute2, nftables), libiscsi and its tools (the
# initiator library mpath binds, and iscsi-inq/iscsi-perf as independent witnesses),
# fio for the NBD benchmarks, and venv support for Debian's own python3.
DEBIAN_PACKAGES := tgt libiscsi7 libiscsi-bin iproute2 nftables procps util-linux \
                   fio libnbd-bin python3-libnbd python3-venv multipath-tools

.PHONY: setup setup-system setup-python test lint typecheck unit demo bench clean

setup: setup-system setup-python

setup-system:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(DEBIAN_PACKAGES)

setup-python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

test: lint typecheck
	$(BIN)/pytest

lint:
	$(BIN)/ruff check mpath tests benchmarks
	$(BIN)/ruff format --check mpath tests benchmarks

typecheck:
	$(BIN)/mypy

# Pure-logic tests only (no root, no rig): quick feedback while editing.
unit:
	$(BIN)/pytest -m "not rig"

# Benchmarks (speed targets); each writes its own section of docs/benchmarks.md.
bench:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks

demo:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
