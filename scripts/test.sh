#!/usr/bin/env bash
# Second command of the README: set up and run the whole test suite.
# The tests start their own Dovecot, SMTP listener and (when none runs on
# 127.0.0.1:5432) PostgreSQL; nothing is skipped for want of a server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check .
# Strict, over every production module (the configuration is in pyproject.toml).
.venv/bin/mypy
# pytest exits 5 when it collected no test: that fails here like any error.
# One worker per core (pytest-xdist): most tests wait on servers, processes
# and the browser, so two cores run the suite in about half the time.
.venv/bin/python -m pytest -q -p no:cacheprovider -n auto --durations=15 "$@"
