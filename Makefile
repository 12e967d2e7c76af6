# mpath — the README's two commands: `make setup` then `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: one list, packaging/debian-packages.txt (README.md points to it).
DEBIAN_PACKAGES := $(shell sed -e 's/\#.*//' packaging/debian-packages.txt)

.PHONY: setup setup-system setup-python test lint typecheck unit demo bench torture clean lab lab-test

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

# The torture run (docs/reliability.md): a seeded fault campaign on a real rig, every
# acknowledged write checked in the backing file afterwards. Exit 1 on any unexpected
# error, mismatch or lost write.
SECONDS ?= 300
SEED ?= 1
torture:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.torture \
		--seconds $(SECONDS) --seed $(SEED) --json

demo:
	$(SUDO) env PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info build dist

# -- mpath installed as a tool: wheel, man pages, completion, Debian package ---------------
# `make install` puts mpath under $(PREFIX) (PREFIX=/usr/local, DESTDIR for staging):
# bin/mpath, lib/mpath (the code and its Python dependencies), man pages, bash and zsh
# completion. `make deb` builds dist/mpath_VERSION-1_ARCH.deb from the same pieces;
# `make deb-test` (root, network) installs it in a clean Debian 12 root and runs it.
PREFIX ?= /usr/local
DEB_MIRROR ?= http://deb.debian.org/debian
MPATH_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' mpath/__init__.py)
WHEEL = dist/mpath-$(MPATH_VERSION)-py3-none-any.whl
DEB = dist/mpath_$(MPATH_VERSION)-1_$(shell dpkg --print-architecture).deb
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: wheel man completion install uninstall deb deb-test

wheel:
	rm -rf dist/mpath-*.whl build/lib build/bdist.*  # no stale modules in the wheel
	$(BIN)/pip wheel -q --no-deps -w dist . 2>&1 | grep -v "is ignored: it is neither" || true
	test -f $(WHEEL)

man:
	rm -rf build/man
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(BIN)/python -m mpath.cli.manpage build/man >/dev/null

completion:
	mkdir -p build/completion
	_MPATH_COMPLETE=bash_source $(BIN)/mpath > build/completion/mpath.bash
	_MPATH_COMPLETE=zsh_source $(BIN)/mpath > build/completion/_mpath

install: wheel man completion
	packaging/install-tree.sh $(WHEEL) build/man build/completion "$(DESTDIR)" $(PREFIX) $(BIN)/pip

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/lib/mpath $(DESTDIR)$(PREFIX)/bin/mpath \
		$(DESTDIR)$(PREFIX)/share/man/man1/mpath.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/mpath-*.1.gz \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/mpath \
		$(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_mpath

deb: wheel man completion
	packaging/build-deb.sh $(WHEEL) build/man build/completion $(MPATH_VERSION) $(DEB) $(BIN)/pip

deb-test: deb
	$(SUDO) packaging/test-deb.sh $(DEB) $(DEB_MIRROR) build/deb-test-root
