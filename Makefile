# The two set-up commands of the README: `make demo` and `make test`.
# Every install step lives here or in scripts/: a fresh Debian machine needs nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit setup host-packages venv kernel schedulers clean

demo: setup
	$(BIN)/ktstr test examples/ -p no:cacheprovider -rA

test: setup lint
	$(BIN)/pytest -p no:cacheprovider tests/

unit: venv
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/cli -q

# ruff, mypy, and import-linter's contracts for the layering (pyproject.toml,
# docs/architecture.md).
lint: venv
	$(BIN)/ruff check src tests examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

setup: host-packages venv kernel schedulers

host-packages:
	sh scripts/setup-host.sh

venv: $(STAMP)

# pip builds ktstr._native (setup.py, src/ktstr/_native.c) into src/ktstr/ in place.
$(STAMP): pyproject.toml setup.py src/ktstr/_native.c
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "ktstr needs Python >= 3.11 ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

kernel: venv
	$(BIN)/ktstr kernel fetch

# The kernel's own example sched_ext schedulers, built against the cached kernel.
schedulers: kernel
	$(BIN)/ktstr sched build

clean:
	rm -rf $(VENV) .ktstr-runs .mypy_cache .ruff_cache
