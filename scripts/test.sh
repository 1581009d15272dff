#!/usr/bin/env bash
# Run the project's checks: set-up (with every extra the tests use), ruff, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/app -x -m "not integration".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh train quant
scripts/install_test_tools.sh  # docker-compose, chromium: deployment tests skip without them
VENV=${VENV:-.venv}

echo "[test] ruff check" >&2
"$VENV/bin/ruff" check .

echo "[test] pytest" >&2
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "[test] pytest collected no tests." >&2
    status=0
fi
exit $status
