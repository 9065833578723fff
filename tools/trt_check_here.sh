#!/usr/bin/env bash
# The TensorRT 8.6 route checked on a machine without a GPU, as far as CUDA: fetches the parts if they are
# not in .trt-parts/ yet (tools/trt_fetch.sh), then tests/e2e/test_trt_tools.py joins them (into
# $RT_MER_TRT_UNPACKED, default /tmp/rt-mer-trt-test) and runs TensorRT 8.6 under Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .trt-parts/manifest.json ] || bash tools/trt_fetch.sh
PYTHONPATH=$PWD nice python3 -m pytest tests/e2e/test_trt_tools.py tests/inference -v -rs -p no:cacheprovider
