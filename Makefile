# Ratchet: `make run` starts everything on this machine; `make test` sets up and runs the tests;
# `make test-fast` runs the fast lane (every test not marked slow: no DAG runs, api-server or browser).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv chromium run test test-fast lint benchmarks clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: Ratchet needs Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

chromium:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

run: venv
	$(BIN)/python scripts/run.py

test: lint chromium
	$(BIN)/pytest

test-fast: lint
	$(BIN)/pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .

benchmarks: venv
	$(BIN)/python benchmarks/dag_parse.py
	$(BIN)/python benchmarks/backtest_vs_skforecast.py
	$(BIN)/python benchmarks/orchestration_overhead.py
	$(BIN)/python benchmarks/ui_render.py
	$(BIN)/python benchmarks/backtest_storage.py
	$(BIN)/python benchmarks/alert_quality.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/panel_backtest.py
	$(BIN)/python benchmarks/panel_scale.py
	$(BIN)/python benchmarks/events_scale.py

clean:
	rm -rf $(VENV) .airflow .pgdata .run mail reports .bench-venv-mlflow .bench-venv-forecast
