#!/usr/bin/env bash
# Installs everything the tests need (Debian packages, chromium for the web
# tests among them, the [test] extra) and runs them. The README's test
# command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins \
    fluidsynth fluid-soundfont-gm musescore-general-soundfont-small tmux chromium >/dev/null
python=python3
# A distribution's own Python refuses pip installs (PEP 668): use a venv there.
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import sys, sysconfig, pathlib; sys.exit(not pathlib.Path(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED").exists())'; then
    $sudo apt-get install -y -qq python3-venv >/dev/null
    [ -x .venv/bin/python ] || python3 -m venv .venv
    python=.venv/bin/python
fi
$python -m pip install -q --disable-pip-version-check -e '.[test]'
$python -m pytest "$@"
