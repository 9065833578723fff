#!/usr/bin/env bash
# The teacher's outputs for distillation (python -m rt_mer.training --distill W):
# musicnn in a virtual environment of its own (.venv-teacher), since it
# needs TensorFlow and pins an old numpy; see rt_mer/training/teacher.py. Training only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-teacher/bin/python ] || python3 -m venv .venv-teacher
.venv-teacher/bin/pip install -q --disable-pip-version-check -e . tensorflow==2.21.0 tf-keras==2.21.0 librosa==0.11.0 mido==1.3.3
.venv-teacher/bin/pip install -q --disable-pip-version-check --no-deps musicnn==0.1.0
.venv-teacher/bin/python -m rt_mer.training.teacher "$@"
