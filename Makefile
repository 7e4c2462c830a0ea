# The two commands of the README:
#   make demo   set up .venv and run the main job (compile the library patterns, cross-check every backend)
#   make test   set up .venv, check the import layers (lint-imports, contracts in pyproject.toml),
#               then run the whole test suite (and every docstring example)
# Both first build the compiler's numba kernels (`maskc warmup`: about a minute the first
# time on a machine, with progress; a few seconds once they are cached on disk).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.maskc-installed

.PHONY: demo test setup warmup bench fuzz clean

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

setup: $(STAMP)

warmup: $(STAMP)
	$(VENV)/bin/maskc warmup

demo: warmup
	$(VENV)/bin/maskc demo --out demo_out

test: warmup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q --doctest-modules maskc
	$(PY) -m pytest -n 2 --dist loadgroup -q tests

bench: warmup
	$(PY) benchmarks/compile_speed.py

# make fuzz TEXTS=100000 FILES=10000 IMPORTERS=10000 ATTENTION=2000: the long fuzz run (docs/reliability.md)
TEXTS ?= 100000
FILES ?= 10000
IMPORTERS ?= 10000
ATTENTION ?= 2000
BAD_INPUTS ?= 2000
fuzz: warmup
	$(PY) tools/fuzz.py --texts $(TEXTS) --files $(FILES) --importers $(IMPORTERS) --attention $(ATTENTION) \
		--bad-inputs $(BAD_INPUTS) --workers 2 --json fuzz_out.json

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis .import_linter_cache .grimp_cache
