#!/usr/bin/env bash
# Installs amt and everything it needs on a fresh machine (Debian/Ubuntu for the system packages).
#
#   bash setup.sh demo   # amt, the web demo, FluidSynth + a General MIDI soundfont for audio
#   bash setup.sh test   # all of the above plus the test tools and headless Chromium for the browser test
#
# Without apt-get (macOS, Windows) the Python part still installs: the demo then says that audio is
# unavailable and the browser test is skipped with its reason.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-demo}"

system_packages() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: no apt-get here; install these yourself for full functionality: $*" >&2
    return 0
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "$@" >/dev/null; }; then
    echo "setup.sh: could not install system packages ($*); continuing without them" >&2
  fi
}

# CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
# (GPU users: install the torch build for your CUDA first, then run this script.)
python3 -m pip install -q "torch==2.13.0"
case "$what" in
  demo)
    system_packages fluidsynth fluid-soundfont-gm
    python3 -m pip install -q -e ".[demo]"
    ;;
  test)
    system_packages fluidsynth fluid-soundfont-gm chromium lua5.4 nodejs curl
    python3 -m pip install -q -e ".[demo,serve,train,test]"
    ;;
  *)
    echo "usage: bash setup.sh demo|test" >&2
    exit 2
    ;;
esac
