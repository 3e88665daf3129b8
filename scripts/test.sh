#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite, one pytest-xdist worker per core (at
# most 4; each worker is pinned to its core, see tests/conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadgroup "$@"
