#!/usr/bin/env bash
# Installs amt into a project virtual environment (.venv) and runs it, on a fresh machine.
#
#   bash setup.sh demo [ARGS...]  # amt, the web demo, FluidSynth + a soundfont; then starts `amt demo ARGS`
#   bash setup.sh test [ARGS...]  # the above, test tools, headless Chromium, LilyPond; then ruff + pytest ARGS
#   bash setup.sh install         # only installs (demo extras); use .venv/bin/amt afterwards
#
# Why a virtual environment: Debian 12 and Ubuntu 24.04 mark the system Python as externally managed (PEP 668),
# so `pip install` outside one fails. If `python3 -m venv` is missing (Debian's python3-venv), it is installed
# with apt-get (through sudo when not root). Without apt-get (macOS, Windows) the Python part still installs: the
# demo then says that audio is unavailable and the browser test is skipped with its reason.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-demo}"
[ $# -gt 0 ] && shift
case "$what" in
  demo|test|install) ;;
  *) echo "usage: bash setup.sh demo|test|install [ARGS...]" >&2; exit 2 ;;
esac
VENV=.venv

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

system_packages() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: no apt-get here; install these yourself for full functionality: $*" >&2
    return 0
  fi
  if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
      --no-install-recommends "$@" >/dev/null; }; then
    echo "setup.sh: could not install system packages ($*); continuing without them" >&2
  fi
}

make_venv() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1 && return 0
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian/Ubuntu ship venv (and ensurepip) in a separate package.
    rm -rf "$VENV"
    system_packages python3-venv python3-pip
    python3 -m venv "$VENV" || { echo "setup.sh: cannot create a virtual environment (install python3-venv)" >&2; exit 1; }
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
}

make_venv
PY="$VENV/bin/python"
# CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
# (GPU users: install the torch build for your CUDA into .venv first, then run this script.)
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
case "$what" in
  demo|install)
    system_packages fluidsynth fluid-soundfont-gm
    "$PY" -m pip install -q -e ".[demo]"
    echo "setup.sh: amt is installed in $VENV (run $VENV/bin/amt, or 'source $VENV/bin/activate' first)" >&2
    if [ "$what" = demo ]; then exec "$VENV/bin/amt" demo "$@"; fi
    ;;
  test)
    system_packages fluidsynth fluid-soundfont-gm chromium lua5.4 nodejs curl lilypond
    "$PY" -m pip install -q -e ".[demo,serve,train,test]"
    "$VENV/bin/ruff" check .
    exec "$PY" -m pytest -q "$@"
    ;;
esac
