#!/usr/bin/env bash
# The GPU checks (issue 53 part 2), on the device tool's GPU machine: Python 3.12 with torch, onnxruntime,
# numpy, scipy, rich, cuda-bindings; no registry. Everything else travels from here (docs/gpu.md):
#   .whl/         rt-mer's missing wheels (tools/trt_fetch.sh puts them there), installed into /tmp/site
#   .trt-parts/   TensorRT 8.6's builder, Python 3.11, TensorRT 10's lean and dispatch runtimes, in parts of
#                 at most 56 MiB (tools/trt_fetch.sh), one part a call, gathered in /tmp/rt-mer-trt/parts
# Device time is 15 minutes in all, the machine's start included, and the machine is given back 30 s after a
# call: make the calls back to back, as listed, with no work between them. Each call's logs are in $OUT.
#
#   1. carry .whl, .trt-parts/manifest.json, .trt-parts/rt-mer-trt.tar.zst.01    bash tools/gpu_check.sh torch
#      (timeout_s 420): installs the wheels, receives part 01, then the floor: PyTorch eager on this GPU,
#      per stage at batch 1..1024, one stream's latency, streams sustained (tools/gpu_torch_bench.py)
#   2. for each next part but the last: carry .trt-parts/manifest.json and that part
#      bash tools/gpu_check.sh receive (timeout_s 60)
#   3. the last part: carry .trt-parts/manifest.json, that part and .trt-parts/zstd
#      bash tools/gpu_check.sh trt (timeout_s 600): joins the parts, then in order, each step bounded:
#      the TensorRT checks (tools/gpu_trt_check.py: build with 8.6, run with the 10.x lean runtime, parity in
#      fp32 and fp16, cache, corrupt plan), the bench (TensorRT beside ONNX Runtime on the CPU and PyTorch on
#      this GPU, streams 1, 64, 1024), the GPU tests, a plan for every Ampere-or-newer GPU, the dispatch runtime.
# A call that says CORRUPT or MISSING for a part: send that part again at once with `receive`.
# What comes back ($OUT; the tool returns 8 files at most): summary.txt, logs-STEP.tgz (every log and JSON
# figure file, remade after each step), plans.tgz (the plans built). Commit the logs under docs/gpu-runs/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
HOLD=/tmp/rt-mer-trt                 # outlives the call while the machine stays warm
BUNDLE=$HOLD/rt-mer-trt
LOGS=$HOLD/logs/${1:-receive}
mkdir -p "$OUT" /tmp/site "$HOLD/parts" "$LOGS"
export PYTHONPATH=/tmp/site:$BUNDLE/trt10:$PWD PYTHONUNBUFFERED=1 RT_MER_CACHE=$HOLD/cache
export RT_MER_TRT_BUILDER=$BUNDLE/bin/trt86-python RT_MER_TRT_BUNDLE=$BUNDLE
step=${1:-receive}
started=$SECONDS

left() { echo $(( ${BUDGET:-560} - (SECONDS - started) )); }
bounded() {       # bounded SECONDS NAME COMMAND...: run, log to $OUT/NAME.log, never past the call's budget
    local limit=$1 name=$2; shift 2
    local room; room=$(left)
    [ "$room" -lt 20 ] && { echo "== $name: skipped, $room s left in this call" | tee -a "$OUT/summary.txt"; return; }
    [ "$limit" -gt "$room" ] && limit=$room
    echo "== $name (at most $limit s)" | tee -a "$OUT/summary.txt"
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local status=$?
    tail -n 25 "$LOGS/$name.log"
    echo "== $name: exit $status after $((SECONDS - started)) s in this call" | tee -a "$OUT/summary.txt"
    keep
}
keep() { cp "$OUT/summary.txt" "$LOGS/" 2>/dev/null; tar -czf "$OUT/logs-$step.tgz" -C "$LOGS" . ; }

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl > "$LOGS/pip.log" 2>&1 || { echo "wheels did not install:"; tail -5 "$LOGS/pip.log"; }
fi
if ls .trt-parts/rt-mer-trt.tar.zst.* >/dev/null 2>&1; then
    python3 tools/trt_parts.py receive .trt-parts "$HOLD/parts" 2>&1 | tee -a "$LOGS/parts.log"
fi

case $step in
receive)
    ;;
torch)
    { nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
      nproc; python3 -c 'import torch, onnxruntime, cuda.bindings, soundfile, zmq; print("torch", torch.__version__,
"onnxruntime", onnxruntime.__version__, "cuda-bindings", cuda.bindings.__version__)'
    } 2>&1 | tee "$LOGS/env.txt"
    BUDGET=400 bounded 380 torch-bench python3 tools/gpu_torch_bench.py --json "$LOGS/torch-bench.json"
    ;;
trt)
    python3 tools/trt_parts.py join .trt-parts "$HOLD/parts" "$HOLD" 2>&1 | tee -a "$LOGS/parts.log" || exit 1
    { nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
      cat "$BUNDLE/VERSIONS"
      python3 -c 'import tensorrt_lean_bindings as t; print("lean runtime", t.__version__)'
      "$RT_MER_TRT_BUILDER" -c 'import tensorrt as t; print("builder", t.__version__)'
    } 2>&1 | tee "$LOGS/env.txt"
    bounded 300 trt-check python3 tools/gpu_trt_check.py --json "$LOGS/trt-check.json"
    bounded 150 bench python3 -m rt_mer.cli bench --engine tensorrt --precision fp16 --streams 1,64,1024 gpu streams
    bounded 150 pytest python3 -m pytest tests/inference tests/e2e/test_tensorrt.py tests/e2e/test_trt_tools.py -v -rs -p no:cacheprovider
    bounded 120 ampere-plus python3 -m rt_mer.cli build-engine --ampere-plus --precision fp16
    # the dispatch runtime alone (no lean runtime on the path) needs a plan with its lean runtime inside, which
    # 8.6.0's builder embeds only if it finds libnvinfer_lean.so.8 (its wheel has none): does it build one?
    mkdir -p "$HOLD/dispatch" && ln -sf "$BUNDLE"/trt10/tensorrt_dispatch_* "$HOLD/dispatch/"
    bounded 120 dispatch env PYTHONPATH=/tmp/site:$HOLD/dispatch:$PWD \
        python3 -m rt_mer.cli build-engine --version-compatible --precision fp32
    (cd "$RT_MER_CACHE/plans" 2>/dev/null && tar -czf "$OUT/plans.tgz" ./*.plan ./*.json)
    ls -la "$RT_MER_CACHE/plans" 2>&1 | tee -a "$OUT/summary.txt"
    ;;
*)
    echo "usage: bash tools/gpu_check.sh receive | torch | trt" >&2
    exit 2
    ;;
esac
echo "== $step done in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
keep
