# Sourced by demo.sh and test.sh: create/refresh ./.venv from the project's own files.
# LATENTSYNC_TORCH_SPEC picks the torch to install (default: the CPU wheel this project is tested with);
# set it to "torch" in an environment that already has the torch you want, and pip keeps it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON_BIN=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "${LATENTSYNC_TORCH_SPEC:-torch==2.13.0}" -r requirements.txt "$@"
if [ -z "${LATENTSYNC_MEDIA_DIR:-}" ] && [ -d ../shared/media ]; then
  LATENTSYNC_MEDIA_DIR=$(cd ../shared/media && pwd)
  export LATENTSYNC_MEDIA_DIR
fi
