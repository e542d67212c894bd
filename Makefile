# Short entry points; see README.md.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint worker beat bench bench-checkin setup services migrate

$(STAMP): pyproject.toml
	@echo "Installing the console and its dependencies into $(VENV): a few minutes the first time, then only when pyproject.toml changes."
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

migrate: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	@# hashed, gzipped static files that browsers may cache for a year (console/staticfiles.py)
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

# Start the console with demo data: web on http://127.0.0.1:8000 plus a Celery worker; Ctrl-C stops both.
# A laptop demo asks for what it needs, by name: demo users, debug pages, loopback hosts only (settings refuse
# DEBUG on any other host, and the demo users are never made without CONSOLE_DEMO).
DEMO_ENV := CONSOLE_DEMO=1 DEBUG=1 ALLOWED_HOSTS=127.0.0.1,localhost
run: migrate
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	$(DEMO_ENV) $(BIN)/python manage.py run_console

# Start PostgreSQL/Redis if they are installed but down (CI and our machines), then run the whole suite.
test: setup
	bash .ci/services
	bash .ci/browser
	DB_CONN_MAX_AGE=0 DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} CACHE_URL=$${CACHE_URL:-redis://127.0.0.1:6379/14} \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (lint and format) on the whole tree, mypy with django-stubs on jobs/ and devices/ (STYLE.md).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

worker: setup
	$(BIN)/celery -A console worker -Q default,checks,heavy --loglevel INFO

beat: setup
	$(BIN)/celery -A console beat --loglevel INFO --schedule var/celerybeat-schedule

bench: setup
	$(BIN)/python bench/optimize.py

# Check-in and download throughput under gunicorn, PostgreSQL and Redis (wrk and nginx from Debian).
bench-checkin: setup
	command -v wrk >/dev/null && command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk nginx)
	bash .ci/services
	$(BIN)/python bench/checkin.py $(BENCH_ARGS)
