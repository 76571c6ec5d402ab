# ecgdiff: the two commands are `make test` and `make demo` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out
STAMP := $(VENV)/.installed

.PHONY: test demo install export-check lint nbtest pytest slow clean-venv chromium readme

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# reinstall when the pins or the package metadata change
$(STAMP): $(BIN)/python constraints.txt settings.ini setup.py
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# nbdev_export / nbdev_clean must leave no diff: the notebooks are the source
export-check: install
	@before="$$(git status --porcelain)"; \
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean; \
	after="$$(git status --porcelain)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev_export/nbdev_clean changed files: commit the exported modules and clean notebooks"; \
	  git status --porcelain; exit 1; fi

# ruff (ruff.toml) on the exported modules: fix what it reports in the notebooks
lint: install
	$(BIN)/ruff check ecgdiff

nbtest: install
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(BIN)/python tests/nbrun.py --n_workers 2 --timing

# headless Chromium for the docs and report checks (Debian packages), installed when missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@{ command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null && \
	  { command -v chromedriver || test -x "$$CHROMEWEBDRIVER/chromedriver"; } >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver (headless browser for the docs check)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

pytest: install chromium
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations 15 tests

test: export-check lint nbtest pytest

# the heavy cells too (CPU minutes to hours; see each notebook)
slow: install
	MPLBACKEND=Agg $(BIN)/python tests/nbrun.py --flags slow --n_workers 2 --timing

# real PTB-XL beside the project, for the shipped model's section of the report (skipped when absent)
PTBXL ?= $(wildcard ../shared/data/ptbxl-fold10)
demo: install
	$(BIN)/ecgdiff demo --out $(DEMO_OUT) $(if $(PTBXL),--ptbxl $(PTBXL))

# README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which is not installed here)
readme: install
	MPLBACKEND=Agg $(BIN)/python .ci/readme.py

clean-venv:
	rm -rf $(VENV)
