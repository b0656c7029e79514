#!/usr/bin/env bash
# README command (b): the whole test suite, in two Python environments.
#   1. core: ./.venv (requirements.txt + requirements-test.txt), everything under tests/ except the two
#      ComfyUI folders;
#   2. ComfyUI: the real ComfyUI 0.3.64 beside the checkout (../shared/comfyui/setup.sh builds .comfyui/ and
#      links this pack into it), plus requirements-comfyui-test.txt and Debian's chromium; runs
#      tests/comfyui (nodes, which import comfy_api) and tests/integration (real server + browser).
#
# Arguments go to pytest. Paths pick the phase they belong to (tests/comfyui*, tests/integration* -> ComfyUI,
# any other path -> core; a phase with no path of its own is skipped); options go to every phase that runs:
#   bash scripts/test.sh                                   # both phases, CI's command
#   bash scripts/test.sh tests/test_media_video.py -x      # core only
#   bash scripts/test.sh tests/integration -k browser      # ComfyUI only
#   bash scripts/test.sh -k fixtures                       # both, filtered (a phase selecting nothing is fine)
# With no arguments, a phase that collects no tests fails (pytest exit 5): CI must really run both.
# Environment: LATENTSYNC_COMFYUI_DEST (default .comfyui), LATENTSYNC_ARTIFACTS (screenshots, default
# tests/artifacts), CI=true (set by .ci/run: a missing ComfyUI or chromium fails instead of skipping).
source "$(dirname "$0")/_env.sh" -r requirements-test.txt
export LATENTSYNC_PROGRESS=0

core_paths=() comfy_paths=() options=()
for arg in "$@"; do
  case "$arg" in
    tests/comfyui*|tests/integration*|./tests/comfyui*|./tests/integration*) comfy_paths+=("$arg") ;;
    -*|*=*) options+=("$arg") ;;
    *) if [ -e "${arg%%::*}" ]; then core_paths+=("$arg"); else options+=("$arg"); fi ;;
  esac
done
run_core=1 run_comfy=1
if [ ${#core_paths[@]} -gt 0 ] || [ ${#comfy_paths[@]} -gt 0 ]; then
  [ ${#core_paths[@]} -gt 0 ] || run_core=0
  [ ${#comfy_paths[@]} -gt 0 ] || run_comfy=0
fi
[ ${#core_paths[@]} -gt 0 ] || core_paths=(tests)
if [ ${#comfy_paths[@]} -eq 0 ]; then
  for path in tests/comfyui tests/integration; do [ -d "$path" ] && comfy_paths+=("$path"); done
fi

# pytest's exit code for one phase, with "collected nothing" (5) a failure only when no filter was given.
phase() {
  local name=$1; shift
  echo "=== $name: $*" >&2
  set +e
  "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    if [ ${#options[@]} -eq 0 ]; then
      echo "=== $name: pytest collected no tests: failing on purpose" >&2
      return 1
    fi
    echo "=== $name: no test selected by the filter" >&2
    return 0
  fi
  return "$rc"
}

core_rc=0 comfy_rc=0
if [ "$run_core" = 1 ]; then
  phase core python -m pytest --ignore=tests/comfyui --ignore=tests/integration \
    "${core_paths[@]}" ${options[@]+"${options[@]}"} || core_rc=$?
fi

if [ "$run_comfy" = 1 ]; then
  comfy_rc=0
  shared=${LATENTSYNC_SHARED_DIR:-../shared}
  if [ ! -f "$shared/comfyui/setup.sh" ]; then
    echo "=== comfyui: $shared/comfyui/setup.sh not found (clone this pack with ../shared beside it)" >&2
    comfy_rc=1
  else
    dest=${LATENTSYNC_COMFYUI_DEST:-.comfyui}
    if ! exports=$(bash "$shared/comfyui/setup.sh" "$dest" --with-pack . --name ComfyUI-LatentSync); then
      echo "=== comfyui: $shared/comfyui/setup.sh failed (its log: $dest/setup-pip.log)" >&2
      exit 1
    fi
    eval "$exports"
    export COMFYUI_DIR COMFYUI_PYTHON
    "$COMFYUI_PYTHON" -m pip install -q -r requirements-comfyui-test.txt -c "$COMFYUI_DIR/../venv/comfy-constraints.txt"
    if [ ! -x /usr/bin/chromium ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "=== comfyui: installing Debian's chromium for the browser test" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } ||
          echo "=== comfyui: apt-get install chromium failed: the browser test will fail (CI) or skip" >&2
      else
        echo "=== comfyui: /usr/bin/chromium missing and not root: the browser test will skip (fail in CI)" >&2
      fi
    fi
    phase comfyui "$COMFYUI_PYTHON" -m pytest "${comfy_paths[@]}" ${options[@]+"${options[@]}"} || comfy_rc=$?
  fi
fi

echo "=== result: core rc=$core_rc (ran: $run_core), comfyui rc=$comfy_rc (ran: $run_comfy)" >&2
[ "$core_rc" -eq 0 ] && [ "$comfy_rc" -eq 0 ]
