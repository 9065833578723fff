#!/usr/bin/env bash
# The GPU checks of the TensorRT engine, on a machine with an NVIDIA GPU, its
# driver and the CUDA toolkit but no package index (the device tool's: Python
# 3.12 with torch, onnxruntime, numpy, scipy, rich, pytest already there).
# Installs the wheels carried in .whl/ into /tmp/site (and builds pycuda from
# its sdist there, against the CUDA toolkit), runs tests/test_tensorrt.py,
# builds the plan and runs `rt-mer bench --engine tensorrt`; logs go to $OUT.
# `bash tools/gpu_check.sh install` stops after the install.
#
# Fill .whl/ beforehand, on a machine with PyPI (`echo '/.whl*/' >> .git/info/exclude`
# first; the platform flags are in the device tool's README):
#   wheels, cp312 manylinux: soundfile cffi pycparser soxr pyzmq mido sounddevice python-osc pytools
#   platformdirs siphash24 mako
#   pycuda's sdist (from https://pypi.org/pypi/pycuda/json: pip download cannot fetch it without building it)
#   TensorRT: the full tensorrt-cu12/-cu13 wheels come from NVIDIA's package index only (PyPI
#   holds stubs that fetch them at install), which the GPU machine cannot reach. TensorRT for
#   RTX has real wheels on PyPI: tensorrt-rtx-cu13-libs and -bindings (cp312), and the
#   tensorrt-rtx-cu13 sdist, a pure-Python wrapper (`pip wheel --no-deps` it here).
# A file too big for one call's 64 MiB (libtensorrt_rtx.so.1, 234 MB, 65 MB as xz -9e)
# travels in parts over several calls, while the machine stays warm: delete it from its
# wheel (`zip -d`), then `xz -9e` it and `split` the .xz into .whl-part1/, .whl-part2/, ...
# at its path under site-packages (.whl-part1/tensorrt_rtx_libs/libtensorrt_rtx.so.1.xz.aa).
# Each call carries .whl and one part folder; parts gather in /tmp/parts, and a file
# whose parts are all there is unpacked into /tmp/site.
# Usage (device tool): carry [".whl", ".whl-part1"]: bash tools/gpu_check.sh install;
# at once after, carry [".whl", ".whl-part2"]: bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT" /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RT_MER_CACHE=/tmp/rt-mer-cache
export CUDA_ROOT=${CUDA_ROOT:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}

for part in .whl-part*/; do [ -d "$part" ] && mkdir -p /tmp/parts && cp -r "$part". /tmp/parts/; done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl 2>&1 | tee "$OUT/pip.log"
if ! python3 -c 'import pycuda.driver' 2>/dev/null && ls .whl/pycuda-*.tar.gz >/dev/null 2>&1; then
    rm -rf /tmp/pycuda && mkdir -p /tmp/pycuda /tmp/libcuda && tar xzf .whl/pycuda-*.tar.gz -C /tmp/pycuda --strip-components 1
    # -lcuda wants libcuda.so: the toolkit's stub, or a link to the driver's libcuda.so.1
    driver=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}'); [ -n "$driver" ] && ln -sf "$driver" /tmp/libcuda/libcuda.so
    # no curand: its headers are not in every toolkit, and the engine does not use it
    (cd /tmp/pycuda && python3 configure.py --cuda-root="$CUDA_ROOT" --no-cuda-enable-curand \
        --cudadrv-lib-dir='${CUDA_ROOT}/lib64/stubs,${CUDA_ROOT}/lib64,/tmp/libcuda' \
        && printf '\n[build_ext]\nparallel = %s\n' "$(nproc)" >> setup.cfg \
        && python3 -m pip install --no-index --no-deps --no-build-isolation --target /tmp/site .) \
        > "$OUT/pycuda-build.log" 2>&1 || echo "pycuda build failed: see pycuda-build.log"
fi
for first in $(find /tmp/parts -name '*.xz.aa' 2>/dev/null); do
    whole=${first%.xz.aa}; target=/tmp/site/${whole#/tmp/parts/}
    [ -e "$target" ] && continue
    mkdir -p "$(dirname "$target")"
    if cat "$whole".xz.* | xz -d > "$target.part" 2>/dev/null; then mv "$target.part" "$target" && echo "joined $target"
    else rm -f "$target.part"; fi         # parts still to come
done
[ "${1:-}" = install ] && exit 0

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
