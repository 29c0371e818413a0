# Deploy Tracker. The quick start is two commands: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+; take the newest one on PATH (pyenv users get .python-version's).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	>/dev/null 2>&1 && { echo $$p; break; }; done)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -n auto

.PHONY: run test install lint typecheck clean

$(VENV)/.created:
	@test -n "$(PYTHON)" || { echo "Deploy Tracker needs Python 3.12 or newer on PATH."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.runtime: $(VENV)/.created requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.dev

## make run: migrate, load the demo response, serve it over ASGI (Daphne) on http://$(HOST):$(PORT)
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Deploy Tracker: http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	$(PY) manage.py runserver $(HOST):$(PORT)

## make test: the whole suite (DATABASE_URL / REDIS_URL select PostgreSQL and Redis)
test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache

.PHONY: backup restore

## make backup [FILE=…]: the database to one file (pg_dump -Fc on PostgreSQL, a data dump on SQLite);
## default backups/deploy-tracker-<UTC time>.dump|.xml. FORMAT=data makes a portable one on PostgreSQL.
backup: $(VENV)/.runtime
	$(PY) manage.py backup $(if $(FILE),--output "$(FILE)") $(if $(FORMAT),--format $(FORMAT))

## make restore FILE=…: a backup into the (new, empty) database DATABASE_URL names, then migrate it
restore: $(VENV)/.runtime
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/deploy-tracker-….dump (or .xml)"; exit 2; }
	$(PY) manage.py restore "$(FILE)"
