# The two commands of the README: `make demo` and `make test`. Both install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, or from the Python that runs make (installed there on first use).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
CLI := $(RUN) icecube-stream

.PHONY: help setup stack-install stack-up stack-down stack-status demo notebooks notebooks-run test unit integration lint format

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: .venv/.synced ## Python environment from the lock file (uv; cached downloads)

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

stack-install: setup ## Fetch/build Kafka jars, FerretDB, Prometheus into ~/.cache/icecube-stream
	$(CLI) stack install

stack-up: setup ## Start Kafka, MongoDB wire, Prometheus, MLflow and wait until healthy
	$(CLI) stack up

stack-down: setup ## Stop the pipeline and the stack (exactly what was started)
	$(CLI) stack down

stack-status: setup ## Each service: endpoint, pid, health
	$(CLI) stack status

demo: stack-up ## Set up everything, run the pipeline on a simulated data set, print a summary
	$(CLI) demo
	$(CLI) alerts || true

# Jupyter refuses to run as root (containers, CI) unless told --allow-root.
notebooks: setup ## JupyterLab on notebooks/ from the project environment, on 127.0.0.1 (prints the URL)
	$(RUN) jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

notebooks-run: setup ## Run every notebook as a reader would (simulated data) and store its outputs
	env -u ICECUBE_NOTEBOOK_DATA -u ICECUBE_NOTEBOOK_MODEL -u MPLBACKEND $(RUN) jupyter nbconvert \
		--to notebook --execute --inplace --ExecutePreprocessor.record_timing=False notebooks/*.ipynb

lint: setup ## ruff (lint + format check) and mypy
	$(RUN) ruff check src tests bento
	$(RUN) ruff format --check src tests bento
	$(RUN) mypy

unit: setup ## Fast tests, no services
	$(RUN) pytest -m unit

integration: stack-install ## Tests against the real local stack (started if needed)
	$(RUN) pytest -m "integration or e2e or chaos"

test: lint stack-install ## Everything: lint, types, unit and integration tests
	$(RUN) pytest

format: setup ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix src tests bento
	$(RUN) ruff format src tests bento
