#!/usr/bin/env bash
# Installs rt-mer in .venv (with the Debian packages and the extras the
# README's Use section needs: the [app] extra) and runs it: `rt-mer run` on
# the default microphone, or the built-in demo music when there is none. The
# README's first command; arguments go to `rt-mer run`. A second run skips
# the installing (tools/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/install.sh
install_debian_packages python3-venv libportaudio2
install_into_venv app
say "starting rt-mer run (.venv/bin/rt-mer)"
exec .venv/bin/rt-mer run "$@"
