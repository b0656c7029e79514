#!/usr/bin/env bash
# README command (b): install into ./.venv from requirements*.txt and run the test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k media -x`).
source "$(dirname "$0")/_env.sh" -r requirements-test.txt
export LATENTSYNC_PROGRESS=0
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
