# Every target bootstraps its own virtual environment from requirements.lock (idempotent).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.crashbt-installed

.PHONY: demo test bench lint audit venv clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m backtest.warmup
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crashbt run configs/demo_feb_2026.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest tests/bench -q -p no:randomly --benchmark-only -o addopts=""

lint: $(STAMP)
	$(BIN)/ruff check .

audit: $(STAMP)
	$(BIN)/pip-audit -r requirements.lock --progress-spinner off

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
