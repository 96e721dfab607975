# Two commands do all set-up: `make bench SPEC=...` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SPEC   ?= specs/lm_head.yaml
BACKEND ?=
STORE  ?=
PYTEST_ARGS ?=
# Extras installed into the venv; CI adds torch (a local CPU wheel): EXTRAS=dev,torch.
# lake: the DuckLake/PostgreSQL extensions the shared-store tests load offline.
EXTRAS ?= dev,lake
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

# STORE and BACKEND are one value each, quoted for the shell (a path with a space is one
# argument; a ' in it is not supported); SPEC may name several specs or a glob, unquoted
BENCH_FLAGS := $(if $(BACKEND),--backend '$(BACKEND)') $(if $(STORE),--store '$(STORE)')

.PHONY: venv bench test test-slow lint clean

# anemll-spec needs Python 3.11+. Said in one line, before pip fails with a wall of
# "Requires-Python" lines; a .venv an older Python made would stick, so it is named too.
NEED_PY := import sys; sys.exit(sys.version_info < (3, 11))
OLD_PY  := anemll-spec needs Python 3.11 or newer

# The stamp depends on pyproject.toml, so a re-run installs nothing unless it changed.
$(STAMP): pyproject.toml
	@if test -x $(PY); then \
	  v=$$($(PY) -V 2>&1) || { echo "$(VENV)'s Python does not run here: remove it" \
	    "(make clean) and run make again" >&2; exit 2; }; \
	  $(PY) -c '$(NEED_PY)' 2>/dev/null || { echo "$(OLD_PY); $(VENV) was made with $$v:" \
	    "remove it (make clean) and run make again (PYTHON=python3.11 or newer)" >&2; exit 2; }; \
	else \
	  v=$$($(PYTHON) -V 2>&1) || { echo "PYTHON=$(PYTHON) does not run here" \
	    "(not installed, or a pyenv shim of a version not selected): run make" \
	    "PYTHON=python3.11 (or newer)" >&2; exit 2; }; \
	  $(PYTHON) -c '$(NEED_PY)' 2>/dev/null || { echo "$(OLD_PY); PYTHON=$(PYTHON) is" \
	    "$${v:-an older Python}: run make PYTHON=python3.11 (or newer)" >&2; exit 2; }; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "installing anemll-spec[$(EXTRAS)] into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]" 2>$(VENV)/pip.log; \
	  status=$$?; grep -v "is ignored: it is neither" $(VENV)/pip.log >&2; exit $$status
	@touch $@

venv: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/anemll-spec bench $(SPEC) $(BENCH_FLAGS) --report

# The default suite leaves out the tests marked `slow` (full-size builds, the README's
# full-size commands, the end-to-end tests of 7 s or more each: many CLI processes,
# Chromium, sustained runs, a server stopped, writers killed, processes racing);
# `make test-slow` runs only those. CI runs both (.ci/run). One
# pytest-xdist worker per core (PYTEST_ARGS="-n 0": one process); worksteal keeps both
# busy to the end.
XDIST := -n auto --dist worksteal

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check anemll_spec tests benchmarks
	$(VENV)/bin/ruff format --check anemll_spec tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
