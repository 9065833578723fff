#!/usr/bin/env bash
# The GPU checks of the TensorRT engine, on a machine with an NVIDIA GPU, its
# driver and the CUDA toolkit but no package index (the device tool's: Python
# 3.12 with torch, onnxruntime, numpy, scipy, rich, pytest already there).
# Installs the wheels carried in .whl/ (and builds pycuda from its sdist there,
# against the CUDA toolkit), runs tests/test_tensorrt.py, builds the plan and
# runs `rt-mer bench --engine tensorrt`; logs go to $OUT.
#
# Fill .whl/ beforehand, on a machine with PyPI (`echo /.whl/ >> .git/info/exclude`
# first; the platform flags are in the device tool's README):
#   wheels, cp312 manylinux: soundfile cffi pycparser soxr pyzmq mido pytools platformdirs siphash24 mako
#   sdist: python3 -m pip download --no-deps --no-binary :all: -d .whl pycuda
#   TensorRT: the full tensorrt-cu12/-cu13 wheels come from NVIDIA's package index only (PyPI
#   holds stubs that fetch them at install), which the GPU machine cannot reach. TensorRT for
#   RTX has real wheels on PyPI: `pip download --no-deps tensorrt-rtx-cu13` (and its -libs,
#   about 95 MB: `split -b 40M` it into parts under .whl/parts/, carried, and
#   `cat .whl/parts/* > /tmp/trt-wheels/<its wheel name>` before this script runs).
#   Whether TensorRT for RTX runs on an H100/H200 is not known yet: try that first.
# Usage (device tool, carry [".whl"]): bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT" /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RT_MER_CACHE=/tmp/rt-mer-cache
export CUDA_ROOT=${CUDA_ROOT:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}

wheels=(.whl/*.whl /tmp/trt-wheels/*.whl)
existing=(); for w in "${wheels[@]}"; do [ -e "$w" ] && existing+=("$w"); done
[ ${#existing[@]} -gt 0 ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "${existing[@]}" 2>&1 | tee "$OUT/pip.log"
if ! python3 -c 'import pycuda.driver' 2>/dev/null && ls .whl/pycuda-*.tar.gz >/dev/null 2>&1; then
    python3 -m pip install --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pycuda-*.tar.gz \
        > "$OUT/pycuda-build.log" 2>&1 || echo "pycuda build failed: see pycuda-build.log"
fi

{ nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
  python3 - <<'EOF'
import importlib
for name in ("tensorrt", "tensorrt_rtx", "pycuda.driver", "torch", "onnxruntime", "soundfile", "zmq"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "") or "imported")
    except Exception as error:
        print(name, "MISSING:", str(error).splitlines()[0] if str(error) else type(error).__name__)
EOF
} 2>&1 | tee "$OUT/env.txt"

python3 -m pytest tests/test_tensorrt.py -v -rs -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log"
python3 -m rt_mer.cli build-engine 2>&1 | tee "$OUT/build-engine.log"
timeout 420 python3 -m rt_mer.cli bench --engine tensorrt --streams 1,64,1024 analyze latency streams gpu 2>&1 \
    | tee "$OUT/bench.log"
