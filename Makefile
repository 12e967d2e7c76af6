# mpath — the README's two commands: `make setup` then `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: the rig (tgt, iproute2, nftables), libiscsi and its tools (the
# initiator library mpath binds, and iscsi-inq/iscsi-perf as independent witnesses),
# fio for the NBD benchmarks, and venv support for Debian's own python3.
# The lab VM (make lab): qemu and Debian's own kernel, booted by virtme-ng (a Python
# package, installed into the venv); inside it open-iscsi, nbd-client, e2fsprogs and
# multipath-tools run against the guest kernel's LIO, SCSI, NBD and dm-multipath.
DEBIAN_PACKAGES := tgt libiscsi7 libiscsi-bin iproute2 nftables procps util-linux \
                   fio libnbd-bin python3-libnbd python3-venv multipath-tools \
                   qemu-system-x86 linux-image-amd64 open-iscsi nbd-client e2fsprogs kmod

.PHONY: setup setup-system setup-python test lint typecheck unit demo bench clean lab lab-test

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

# The lab VM: `make lab CMD='uname -r'` runs CMD as root inside it (repository root,
# this venv first on PATH) and passes its exit code through; `make lab-test` runs the
# tests marked `lab` in one boot. (make exports CMD, given on its command line, to the
# recipe's environment, so the recipe does not have to quote it.)
LAB_TIMEOUT ?= 2400

lab:
	@test -n "$$CMD" || { echo "usage: make lab CMD='command line'" >&2; exit 2; }
	$(BIN)/python -m mpath.lab run --timeout $(LAB_TIMEOUT) -- "$$CMD"

lab-test:
	$(BIN)/python -m mpath.lab run --timeout $(LAB_TIMEOUT) -- \
		pytest -m lab -p no:cacheprovider -v tests/lab

# Pure-logic tests only (no root, no rig, no lab VM): quick feedback while editing.
unit:
	$(BIN)/pytest -m "not rig and not lab and not labvm"

# Benchmarks (speed targets); each writes its own section of docs/benchmarks.md.
bench:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks

demo:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
