# The two commands of the README: `make up` (run the platform) and `make test` (run every check).
# Both set up what they need on a fresh machine: the virtualenv, the package, and (through
# `soma`) Kafka from Maven Central plus PostgreSQL and Redis from Debian's packages.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: venv up test lint unit integration restart-soak down clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

venv: $(INSTALLED)

up: venv
	$(BIN)/soma up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The test session starts the stack itself when it is not running (tests/conftest.py).
test: lint
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

integration: venv
	$(BIN)/pytest tests/integration

# The SIGKILL-recovery test 20 times in a row on two loaded cores (about 8 minutes; CI: once a day, or before a release).
restart-soak: venv
	bench/restart_soak.sh 20

down: venv
	$(BIN)/soma down --stack

clean: down
	rm -rf $(VENV) .soma
