#!/usr/bin/env bash
# README command (a): install into ./.venv and lip-sync the sample clip headless.
# Extra arguments go to `python -m latentsync_core run` (e.g. `--weights random-tiny`, `--video V --audio A`).
run_args=("$@")
# A sourced script without arguments sees the caller's: _env.sh would hand `run`'s options to pip.
set --
source "$(dirname "$0")/_env.sh"
exec python -m latentsync_core run ${run_args[@]+"${run_args[@]}"}
