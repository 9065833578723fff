#!/usr/bin/env bash
# Fetch the TensorRT route for a GPU machine that reaches no registry (see docs/gpu.md), lay it out, and
# pack it into parts of at most 56 MiB in .trt-parts/ (ignored by git), one part per device-tool call
# (64 MiB a call with the working tree; `python3 tools/trt_parts.py budget .trt-parts .whl` checks it, and
# `python3 tools/trt_parts.py resplit .trt-parts --part-mib N` resizes the parts without recompressing).
# Also rt-mer's own missing wheels for the GPU machine's Python 3.12, in .whl/ (ignored).
#
#   bash tools/trt_fetch.sh [--part-mib N]        (about 15 minutes on 2 cores, 2.5 GB in $WORK)
#
# The bundle, rt-mer-trt/, unpacked on the GPU machine by tools/trt_parts.py join:
#   trt86/tensorrt/   the builder: TensorRT 8.6.0's libraries (PyPI wheel tensorrt==8.6.0, sm_90 kernels)
#                     with the Python 3.11 bindings of tensorrt-bindings==8.6.1 (8.6.0 has 3.6-3.10 only) and
#                     8.6.0's __init__.py; stub libcublas.so.12, libcublasLt.so.12, libcudnn.so.8 that the
#                     plugin library links (the build turns the cuBLAS/cuDNN tactic sources off)
#   py311/usr/        Python 3.11 from Debian bookworm's debs (dpkg -x), to run the 8.6 bindings
#   bin/trt86-python  python3.11 with trt86/ on its path: rt-mer's RT_MER_TRT_BUILDER
#   trt10/            TensorRT 10's lean and dispatch runtimes with their Python 3.12 bindings (PyPI wheels
#                     tensorrt-{lean,dispatch}-cu13-{libs,bindings}), which run version-compatible plans
#   VERSIONS          what is in it
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PART_MIB=56
[ "${1:-}" = --part-mib ] && PART_MIB=$2
WORK=${WORK:-/tmp/rt-mer-trt-fetch}
OUT=$ROOT/.trt-parts
TRT86=8.6.0 BINDINGS86=8.6.1 TRT10=10.16.1.11
PIP=(python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --platform manylinux_2_28_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p "$WORK/wheels" "$WORK/debs"

echo "== wheels (PyPI)"
"${PIP[@]}" --python-version 3.10 -d "$WORK/wheels" "tensorrt==$TRT86"
"${PIP[@]}" --python-version 3.11 -d "$WORK/wheels" "tensorrt-bindings==$BINDINGS86"
"${PIP[@]}" --python-version 3.12 -d "$WORK/wheels" "tensorrt-lean-cu13-libs==$TRT10" \
    "tensorrt-lean-cu13-bindings==$TRT10" "tensorrt-dispatch-cu13-libs==$TRT10" "tensorrt-dispatch-cu13-bindings==$TRT10"

echo "== rt-mer's wheels that the GPU machine's Python 3.12 lacks (.whl/)"
"${PIP[@]}" --python-version 3.12 --platform manylinux_2_24_x86_64 --platform manylinux_2_26_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux1_x86_64 -d "$ROOT/.whl" \
    soundfile cffi pycparser soxr pyzmq mido sounddevice python-osc

echo "== Python 3.11 and zstd (Debian bookworm)"
if ! ls "$WORK"/debs/python3.11-minimal_*.deb >/dev/null 2>&1; then
    apt-get update -qq
    (cd "$WORK/debs" && apt-get download python3.11-minimal libpython3.11-minimal libpython3.11-stdlib zstd)
fi

echo "== layout"
STAGE=$WORK/stage
B=$STAGE/rt-mer-trt
rm -rf "$STAGE" && mkdir -p "$B/trt86/tensorrt" "$B/py311" "$B/trt10" "$B/bin" "$WORK/x"
rm -rf "$WORK/x"/* && python3 -m zipfile -e "$WORK/wheels/tensorrt-$TRT86-cp310-none-manylinux_2_17_x86_64.whl" "$WORK/x/86"
python3 -m zipfile -e "$WORK/wheels/tensorrt_bindings-$BINDINGS86-cp311-none-manylinux_2_17_x86_64.whl" "$WORK/x/bind"
mv "$WORK"/x/86/tensorrt/lib*.so* "$WORK/x/86/tensorrt/__init__.py" "$B/trt86/tensorrt/"
mv "$WORK/x/bind/tensorrt_bindings/tensorrt.so" "$B/trt86/tensorrt/"       # cp311 bindings: the module is tensorrt.so
for wheel in "$WORK"/wheels/tensorrt_{lean,dispatch}_cu13_*-"$TRT10"-*.whl; do
    python3 -m zipfile -e "$wheel" "$B/trt10"
done
rm -rf "$B"/trt10/*.dist-info
for deb in "$WORK"/debs/*python3.11*.deb; do dpkg -x "$deb" "$B/py311"; done
rm -rf "$B/py311/usr/share" "$B/py311/usr/lib/python3.11/test" "$B/py311/usr/lib/python3.11/idlelib"
dpkg -x "$WORK"/debs/zstd_*.deb "$WORK/x/zstd"

# Stubs for the plugin library's cuBLAS/cuDNN imports: every symbol it takes from each (Python loads
# extensions with RTLD_NOW), each an error return, under the version node the import names.
plugin=$B/trt86/tensorrt/libnvinfer_plugin.so.8
for lib in libcublas.so.12 libcublasLt.so.12 libcudnn.so.8; do
    {
        echo "/* $lib stub for rt-mer's TensorRT 8.6 builder: cuBLAS/cuDNN tactics are off */"
        nm -D --undefined-only "$plugin" | awk -v suffix="@$lib" -v lib="$lib" '
            substr($2, length($2) - length(suffix) + 1) == suffix {
                name = substr($2, 1, length($2) - length(suffix))
                if (name ~ /GetErrorString$/) printf "const char *%s(void) { return \"%s is a stub\"; }\n", name, lib
                else printf "int %s(void) { return 1; }\n", name
            }'
    } > "$WORK/x/stub.c"
    printf '%s { global: *; };\n' "$lib" > "$WORK/x/stub.map"
    gcc -shared -fPIC -O1 -o "$B/trt86/tensorrt/$lib" -Wl,-soname,"$lib" -Wl,--version-script="$WORK/x/stub.map" \
        "$WORK/x/stub.c"
done

cat > "$B/bin/trt86-python" <<'EOF'
#!/bin/sh
# Python 3.11 with TensorRT 8.6 (the builder) on its path, and nothing else.
here=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
PYTHONPATH=$here/trt86 exec "$here/py311/usr/bin/python3.11" -s "$@"
EOF
chmod +x "$B/bin/trt86-python"
{
    echo "tensorrt $TRT86 libraries (PyPI tensorrt==$TRT86) + tensorrt-bindings==$BINDINGS86 (cp311): trt86/"
    echo "tensorrt-lean-cu13 and tensorrt-dispatch-cu13 $TRT10 libs + bindings (cp312): trt10/"
    echo "Debian bookworm: $(cd "$WORK/debs" && ls *python3.11*.deb | tr '\n' ' ')"
} > "$B/VERSIONS"

echo "== check: the builder's Python imports TensorRT 8.6 here (no GPU: CUDA itself is not reached)"
"$B/bin/trt86-python" -c 'import tensorrt; print("tensorrt", tensorrt.__version__, "imports under Python 3.11")'

echo "== pack"
python3 tools/trt_parts.py pack "$STAGE" rt-mer-trt "$OUT" --part-mib "$PART_MIB"
cp "$WORK/x/zstd/usr/bin/zstd" "$OUT/zstd"      # for a GPU machine without zstd (needs only libz, liblzma, liblz4)
echo "parts in $OUT; each device call carries .trt-parts/manifest.json, .trt-parts/zstd and one part"
