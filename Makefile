# Call Recording Portal. `make help` lists the targets; `make run` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORTAL_ENV ?= development
FLASK := $(BIN)/flask --app wsgi

VENV_STAMP := $(VENV)/.created
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
ASSETS_STAMP := static/nhsuk/VERSION

.PHONY: help run test lint format install install-dev assets db clean
# A recipe that fails leaves no half-made target behind, so the next run tries again.
.DELETE_ON_ERROR:

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

run: install assets db ## Set up everything, then serve the portal on http://127.0.0.1:$(PORT)
	@echo "Serving the Call Recording Portal on http://127.0.0.1:$(PORT) (Ctrl+C to stop)"
	PORT=$(PORT) $(BIN)/python wsgi.py

test: install-dev assets lint ## Set up everything, lint, then run the whole test suite
	PORTAL_ENV=test $(BIN)/pytest

lint: install-dev ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev ## Reformat the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(RUNTIME_STAMP) ## Create the virtualenv and install the pinned runtime packages

install-dev: $(DEV_STAMP) ## Also install the pinned test and lint tools

# The stamp is written only after both steps succeed: a half-made virtualenv is made again next time.
$(VENV_STAMP):
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	touch $@

$(RUNTIME_STAMP): requirements.txt $(VENV_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

assets: $(ASSETS_STAMP) ## Install nhsuk-frontend from npm and copy it to static/nhsuk/

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(ASSETS_STAMP): node_modules/.package-lock.json scripts/build_assets.py $(VENV_STAMP)
	$(BIN)/python scripts/build_assets.py

db: install ## Apply migrations to the database and load the default content (safe to repeat)
	$(FLASK) db upgrade
	$(FLASK) content load-defaults

clean: ## Remove the virtualenv, node_modules, built assets and test artefacts (keeps instance/)
	rm -rf $(VENV) node_modules static/nhsuk test-artifacts .pytest_cache .ruff_cache
