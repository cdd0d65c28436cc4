# Every target bootstraps its own virtual environment from requirements.lock (idempotent).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.crashbt-installed

# The distributed-search tests use this server (scripts/test-services starts it when root).
CRASHBT_PG_URL ?= postgresql+psycopg://crashbt:crashbt@127.0.0.1:5432/crashbt
export CRASHBT_PG_URL

.PHONY: demo test bench lint audit venv services clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m backtest.warmup
	@touch $(STAMP)

# Before every command target: the ahead-of-time kernels rebuilt if their sources changed, and
# crashbt's bytecode compiled (an editable install has none until a run writes it, which
# PYTHONDONTWRITEBYTECODE=1 prevents: every command would then recompile crashbt's modules).
PREPARE = $(BIN)/python -m backtest.aot && $(BIN)/python -m compileall -q backtest strategies

demo: $(STAMP)
	$(PREPARE)
	$(BIN)/crashbt run configs/demo_feb_2026.toml
	$(BIN)/crashbt run configs/demo_feb_2026_eth.toml

services:
	@bash scripts/test-services

test: $(STAMP) services
	$(PREPARE)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(PREPARE)
	$(BIN)/python -m pytest tests/bench -q -p no:randomly --benchmark-only -o addopts=""

lint: $(STAMP)
	$(BIN)/ruff check .

audit: $(STAMP)
	$(BIN)/pip-audit -r requirements.lock --progress-spinner off

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
