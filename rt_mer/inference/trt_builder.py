"""The one place that drives a TensorRT builder: ONNX file -> serialised plan.

It runs in rt-mer's process when the TensorRT there has a builder (the
full TensorRT 10, TensorRT 8.6, TensorRT for RTX), or as a script under
another Python when it has none (a 10.x lean or dispatch runtime, which
only runs version-compatible plans): TensorRT 8.6's builder has Python
bindings up to 3.11 only. So this module imports the standard library
alone, and nothing of rt_mer:

    PYTHON trt_builder.py --describe          {"builder": "tensorrt 8.6.0", "fp16": true}
    PYTHON trt_builder.py SPEC.json PLAN      writes PLAN; prints {"builder", "inputs", "outputs"}

A failure is one line on stderr and exit status 1.
"""
from __future__ import annotations

import importlib
import json
import sys

BUILDER_MODULES = ("tensorrt", "tensorrt_rtx")
# cuBLAS and cuDNN tactics: off. The lean runtime has none, and the 8.6
# route carries stubs of those libraries only.
OFF_TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN")


def version_of(trt) -> str:
    return f"{trt.__name__} {getattr(trt, '__version__', '(version unknown)')}"


def major_of(trt) -> int:
    try:
        return int(str(getattr(trt, "__version__", "0")).split(".")[0])
    except ValueError:
        return 0


def has_fp16(trt) -> bool:
    """TensorRT 8 to 10 take FP16 as a builder flag; TensorRT for RTX and
    TensorRT 11 build strongly typed networks only, in the ONNX file's own
    precision (fp32 here)."""
    return trt.__name__ == "tensorrt" and hasattr(trt.BuilderFlag, "FP16") and major_of(trt) < 11


def one_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def make_logger(trt):
    """A TensorRT logger that keeps errors and warnings for one-line
    messages instead of printing TensorRT's own lines (CUDA failing to
    start is only a warning in TensorRT 8.6)."""
    severity = trt.ILogger.Severity
    errors_only = (severity.INTERNAL_ERROR, severity.ERROR)

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list = []
            self.warnings: list = []

        def log(self, level, msg) -> None:
            if level in errors_only:
                self.errors.append(msg)
            elif level == severity.WARNING:
                self.warnings.append(msg)

        @property
        def last_error(self) -> str:
            """The last error, else the last warning."""
            last = (self.errors or self.warnings or ["no reason given"])[-1]
            return one_line(last)

    return Logger()


class BuildError(Exception):
    """The plan cannot be built; the message is one line."""


def network_flags(trt) -> int:
    """TensorRT 8 parses ONNX into explicit-batch networks only when asked
    (10 always does, and deprecates the flag); TensorRT for RTX and 11
    take strongly typed networks only."""
    names = trt.NetworkDefinitionCreationFlag
    if not has_fp16(trt) and hasattr(names, "STRONGLY_TYPED"):
        return 1 << int(names.STRONGLY_TYPED)
    if major_of(trt) < 10 and trt.__name__ == "tensorrt" and hasattr(names, "EXPLICIT_BATCH"):
        return 1 << int(names.EXPLICIT_BATCH)
    return 0


def configure(trt, config, spec: dict) -> None:
    """Precision, portability and tactic sources of the builder config."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.get("workspace_bytes", 1 << 30))
    if spec["precision"] == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)     # fp32 means fp32: parity with ONNX Runtime on the CPU
    if trt.__name__ == "tensorrt_rtx":
        # its default is a portable plan for a list of RTX architectures; build for this GPU instead
        config.num_compute_capabilities = 1
        config.set_compute_capability(trt.ComputeCapability.CURRENT, 0)
    if spec.get("version_compatible"):
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if spec.get("exclude_lean_runtime"):
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    if spec.get("ampere_plus"):
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    sources = getattr(trt, "TacticSource", None)
    off = [getattr(sources, name) for name in OFF_TACTIC_SOURCES if hasattr(sources, name)]
    if off and hasattr(config, "set_tactic_sources"):
        mask = config.get_tactic_sources()
        for source in off:
            mask &= ~(1 << int(source))
        config.set_tactic_sources(mask)


def build(trt, logger, spec: dict) -> tuple[bytes, dict]:
    """(plan, {"inputs": [...], "outputs": [...]}: name and shape of the
    parsed network's tensors, for the caller's contract check)."""
    try:
        builder = trt.Builder(logger)
    except TypeError:       # the bindings' "factory function returned nullptr": CUDA did not initialise
        raise BuildError(f"{version_of(trt)} cannot create a builder ({logger.last_error})") from None
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(spec["model"]):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"{spec['model']}: {version_of(trt)} cannot parse it "
                         f"({one_line(errors[0]) if errors else logger.last_error})")
    tensors = {"inputs": [{"name": network.get_input(i).name, "shape": list(network.get_input(i).shape)}
                          for i in range(network.num_inputs)],
               "outputs": [{"name": network.get_output(i).name, "shape": list(network.get_output(i).shape)}
                           for i in range(network.num_outputs)]}
    config = builder.create_builder_config()
    configure(trt, config, spec)
    profile = builder.create_optimization_profile()
    profile.set_shape(spec["input_name"], *[tuple(shape) for shape in spec["shapes"]])
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError(f"{version_of(trt)} could not build a plan from {spec['model']} ({logger.last_error})")
    return bytes(plan), tensors


def import_builder():
    for name in BUILDER_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise BuildError(f"no TensorRT builder here: none of {', '.join(BUILDER_MODULES)} imports under "
                     f"Python {sys.version.split()[0]}")


def main(argv: list) -> int:
    try:
        trt = import_builder()
        if argv == ["--describe"]:
            print(json.dumps({"builder": version_of(trt), "fp16": has_fp16(trt)}))
            return 0
        if len(argv) != 2:
            raise BuildError("usage: trt_builder.py --describe | SPEC.json PLAN")
        with open(argv[0]) as f:
            spec = json.load(f)
        plan, tensors = build(trt, make_logger(trt), spec)
        with open(argv[1], "wb") as f:
            f.write(plan)
        print(json.dumps({"builder": version_of(trt), **tensors}))
        return 0
    except BuildError as error:
        print(str(error), file=sys.stderr)
    except Exception as error:          # TensorRT failing in a way of its own: still one line
        print(f"TensorRT builder failed ({type(error).__name__}: {one_line(error)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
