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
# Written last by scripts/build_assets.py, so a half-finished copy is made again.
ASSETS_STAMP := static/vendor/wavesurfer/VERSION

.PHONY: help run test lint format install install-dev assets db clean admin register-import due-date audit-verify jobs flask
# A recipe that fails leaves no half-made target behind, so the next run tries again.
.DELETE_ON_ERROR:

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

run: install assets db ## Set up everything, then serve the portal on http://127.0.0.1:$(PORT) with its worker
	@$(BIN)/python -c "from core.config import record_development_server_url as r; r($(PORT))"
	@echo "Serving the Call Recording Portal on http://127.0.0.1:$(PORT) with its worker (Ctrl+C stops both)"
	$(BIN)/honcho start --port $(PORT)

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

assets: $(ASSETS_STAMP) ## Install nhsuk-frontend and wavesurfer.js from npm, copy them to static/

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(ASSETS_STAMP): node_modules/.package-lock.json scripts/build_assets.py $(VENV_STAMP)
	$(BIN)/python scripts/build_assets.py

db: install ## Apply migrations, load the default content and encrypt any plain recordings (safe to repeat)
	@$(FLASK) db upgrade
	@$(FLASK) content load-defaults
	@$(FLASK) recordings encrypt-files

# Commands for a development checkout (PORTAL_ENV=development, the instance/ database and keys). They can run
# while `make run` serves, in another terminal; links they print point at the running server.
admin: db ## Create an admin and print their invitation link: make admin EMAIL=you@example.org NAME="Your Name"
	@test -n "$(EMAIL)" -a -n "$(NAME)" || { echo 'Usage: make admin EMAIL=you@example.org NAME="Your Name"'; exit 2; }
	@$(FLASK) staff create-admin --email "$(EMAIL)" --name "$(NAME)"

register-import: db ## Load the practice register: make register-import FILE=register.csv
	@test -n "$(FILE)" || { echo "Usage: make register-import FILE=register.csv"; exit 2; }
	@$(FLASK) register import "$(FILE)"

due-date: install ## When a request must be answered: make due-date DATE=2026-09-03 [EXTENDED=1]
	@test -n "$(DATE)" || { echo "Usage: make due-date DATE=2026-09-03 [EXTENDED=1]"; exit 2; }
	@$(FLASK) requests due-date "$(DATE)" $(if $(EXTENDED),--extended)

audit-verify: db ## Check the audit trail's chain (the worker does this every night)
	@$(FLASK) audit verify

jobs: db ## When each scheduled job last ran, and whether any is late
	@$(FLASK) jobs status

flask: db ## Any other command: make flask CMD="outbox deliver" (`make flask CMD=--help` lists them)
	@$(FLASK) $(CMD)

clean: ## Remove the virtualenv, node_modules, built assets and test artefacts (keeps instance/)
	rm -rf $(VENV) node_modules static/nhsuk static/vendor test-artifacts .pytest_cache .ruff_cache
