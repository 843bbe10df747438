# Two commands set everything up on a fresh machine:
#   make run    the panel on embedded defaults (SQLite, a file-system broker, the sandbox provider)
#   make test   the whole test suite against PostgreSQL and Redis
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
SANDBOX_PORT ?= 8765
GATEWAYS_PORT ?= 8766

# Tests run against the real services of this machine unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/panel
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9
# pytest-xdist workers for `make test`; worker N uses TEST_REDIS_URL's database + N (tests/parallel.py).
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2

.PHONY: run test check lint bench clean-var messages

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed ($(PYTHON) is older)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[run]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed-run

# Ctrl-C stops it cleanly, with make exiting 0. In a terminal, `set -m` runs honcho as the
# terminal's foreground job, so Ctrl-C reaches honcho alone (not make, which would die of it);
# honcho sends SIGTERM to each process and exits 130, the one code the recipe turns into
# success. The worker uses a thread pool (Procfile.dev): no pool child killed mid-shutdown.
# Without a terminal (a supervisor, a script) the recipe's shell becomes honcho (exec), so a
# SIGTERM or SIGINT that make passes on to its child stops every process, none left orphaned.
run: $(VENV)/.installed-run
	@export DEBUG=true PANEL_PUBLIC_URL=http://127.0.0.1:$(PORT) PORT=$(PORT) \
	        SANDBOX_PORT=$(SANDBOX_PORT) GATEWAYS_PORT=$(GATEWAYS_PORT) PATH="$(CURDIR)/$(BIN):$$PATH" \
	        PANEL_ADMIN_2FA_EXEMPT=$${PANEL_ADMIN_2FA_EXEMPT-admin} \
	        PAYMENT_METHODS=stripe,cryptomus,paypal,manual \
	        STRIPE_SECRET_KEY=sk_test_fake STRIPE_WEBHOOK_SECRET=whsec_fake \
	        STRIPE_API_BASE=http://127.0.0.1:$(GATEWAYS_PORT)/stripe \
	        CRYPTOMUS_MERCHANT_ID=fake-merchant CRYPTOMUS_PAYMENT_KEY=fake-payment-key \
	        CRYPTOMUS_API_BASE=http://127.0.0.1:$(GATEWAYS_PORT)/cryptomus \
	        PAYPAL_CLIENT_ID=fake-client-id PAYPAL_CLIENT_SECRET=fake-client-secret \
	        PAYPAL_WEBHOOK_ID=FAKE-WEBHOOK-ID PAYPAL_API_BASE=http://127.0.0.1:$(GATEWAYS_PORT)/paypal; \
	  python manage.py migrate --noinput && \
	  python manage.py setup_schedules && \
	  python manage.py seed_demo --sandbox-url http://127.0.0.1:$(SANDBOX_PORT)/api/v2 && \
	  if [ -t 0 ]; then set -m; honcho start -f Procfile.dev || [ $$? -eq 130 ]; else exec honcho start -f Procfile.dev; fi

# The structure and type checks (docs/development.md): import contracts, then mypy. They need
# no database and no environment; `make test` runs them first.
check: $(VENV)/.installed-dev
	@export PYTHONPATH="$(CURDIR)" PATH="$(abspath $(BIN)):$$PATH"; \
	  lint-imports --no-cache && \
	  mypy

test: check
	@export DEBUG=true DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	        REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" PATH="$(CURDIR)/$(BIN):$$PATH"; \
	  python scripts/check_services.py && \
	  scripts/ensure_chromium.sh && \
	  pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The translation catalogs (docs/development.md, "Translations"): extract every marked string
# of the customer panel into locale/<lang>/LC_MESSAGES/django.po (the admin's templates, the
# tests and the tools left out; file names without line numbers, so a moved line changes
# nothing), then compile the .mo files that are committed with them. Needs GNU gettext
# (msgfmt, xgettext: Debian's gettext package).
MESSAGES_LANGS ?= es pt_BR ru
messages: $(VENV)/.installed-dev
	@export DEBUG=true; \
	  $(BIN)/python manage.py makemessages $(addprefix -l ,$(MESSAGES_LANGS)) --add-location=file \
	    --ignore='.*' --ignore=tests --ignore=bench --ignore=scripts --ignore=var \
	    --ignore=staticfiles --ignore=static --ignore=templates/admin --ignore=providers/sandbox \
	    --ignore='admin.py' --ignore='*_admin.py' && \
	  $(BIN)/python manage.py compilemessages --ignore='.*' $(addprefix -l ,$(MESSAGES_LANGS))

clean-var:
	rm -rf var
