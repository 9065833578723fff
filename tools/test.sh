#!/usr/bin/env bash
# Installs everything the tests need (Debian packages, the [test] extra) and
# runs them. The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins \
    fluidsynth fluid-soundfont-gm tmux >/dev/null
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m pytest "$@"
