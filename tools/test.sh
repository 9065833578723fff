#!/usr/bin/env bash
# Installs everything the tests need (Debian packages, the [test] extra in
# .venv, the same one run.sh uses) and runs them: all of them by default (the
# README's test command; .ci/run calls it). `--fast` first skips the tests
# marked slow (end-to-end: training, Ray, browsers, long live runs,
# terminals) and runs the rest on every core (pytest-xdist); other
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/install.sh
install_debian_packages python3-venv \
    libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins \
    fluidsynth fluid-soundfont-gm musescore-general-soundfont-small tmux chromium zstd
install_into_venv test
if [ "${1:-}" = --fast ]; then
    shift
    set -- -m "not slow" -n auto "$@"
fi
say "running the tests (.venv/bin/python -m pytest $*)"
exec .venv/bin/python -m pytest "$@"
