#!/usr/bin/env bash
# Installs rt-mer in .venv (with the Debian packages it needs) and runs it:
# `rt-mer run` on the default microphone, or the built-in demo music when
# there is none. The README's first command; arguments go to `rt-mer run`.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo apt-get install -y -qq python3-venv libportaudio2 >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check .
exec .venv/bin/rt-mer run "$@"
