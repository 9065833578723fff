"""The TensorRT engine on this GPU, step by step, each step in one line and
the figures in a JSON file (step 2 of tools/gpu_check.sh): a plan built
(by RT_MER_TRT_BUILDER's TensorRT where only a runtime is installed) and
loaded, parity with ONNX Runtime on real windows (the demo music and
rendered chords) in fp32 and fp16, the cache (a second open loads; a
corrupt plan is reported in one line and rebuilt). A step that fails says
why and the next one runs.

    PYTHONPATH=$PWD python3 tools/gpu_trt_check.py [--max-batch 1024] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rt_mer.bench.feed import demo_windows
from rt_mer.inference import EngineError, default_model, open_engine
from rt_mer.inference.tensorrt import TensorRTEngine
from rt_mer.stream.offline import analyze_file

FP32_TOLERANCE = 1e-3       # as tests/inference/test_tensorrt.py
FP16_TOLERANCE = 0.05       # p99 of |valence|, |arousal| differences
TESTS = Path(__file__).resolve().parents[1] / "tests"


def quadrants(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    return np.where(arousal >= 0, np.where(valence >= 0, 1, 2), np.where(valence < 0, 3, 4))


def rendered_windows(folder: Path) -> np.ndarray:
    """Windows of the test suite's rendered chord music (tests/support/music.py),
    as the offline analysis makes them."""
    import importlib.util          # the tests' helpers are not installed: loaded by path
    spec = importlib.util.spec_from_file_location("music", TESTS / "support" / "music.py")
    music = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(music)
    folder.mkdir(parents=True, exist_ok=True)
    path = music.write(folder / "chords.wav", music.chord_music(30, 22050), 22050)
    windows = []

    class Recorder:
        name, reason = "recorder", ""

        def infer(self, batch):
            windows.append(np.array(batch))
            return cpu.infer(batch)

        def close(self) -> None:
            pass
    cpu = open_engine("onnxruntime")
    analyze_file(path, Recorder())
    return np.concatenate(windows)


def compare(got, want) -> dict:
    scale = max(1.0, float(np.abs(want.explanation).max()))
    return {"valence_max": float(np.abs(got.valence - want.valence).max()),
            "arousal_max": float(np.abs(got.arousal - want.arousal).max()),
            "valence_p99": float(np.percentile(np.abs(got.valence - want.valence), 99)),
            "arousal_p99": float(np.percentile(np.abs(got.arousal - want.arousal), 99)),
            "explanation_max_scaled": float(np.abs(got.explanation - want.explanation).max() / scale),
            "drivers_max_scaled": float(np.abs(got.drivers - want.drivers).max() / scale),
            "quadrant_agreement": float(np.mean(quadrants(got.valence, got.arousal)
                                                == quadrants(want.valence, want.arousal)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-batch", type=int, default=1024)
    parser.add_argument("--json", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rt-mer-trt-check"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    notes: list[str] = []

    def step(name: str, action) -> None:
        started = time.perf_counter()
        try:
            figures[name] = result = action()
            print(f"{name}: {result} ({time.perf_counter() - started:.1f} s)", flush=True)
        except (EngineError, AssertionError) as error:
            figures[name] = {"failed": str(error)}
            print(f"{name}: FAILED: {error} ({time.perf_counter() - started:.1f} s)", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({**figures, "notes": notes}, indent=1, default=str))

    windows = {"demo": demo_windows(300), "rendered": rendered_windows(args.work)}
    cpu = open_engine("onnxruntime")
    reference = {name: cpu.infer(w) for name, w in windows.items()}
    print(f"windows: {', '.join(f'{k} {len(v)}' for k, v in windows.items())}; reference {cpu.name}", flush=True)

    def open_and_compare(precision: str) -> dict:
        started = time.perf_counter()
        engine = TensorRTEngine(default_model(), precision, args.max_batch, report=notes.append)
        opened = time.perf_counter() - started
        try:
            result = {"engine": engine.name, "route": engine.route, "built": engine.built,
                      "open_s": round(opened, 1), "plan": str(engine.plan_path),
                      "plan_bytes": engine.plan_path.stat().st_size if engine.plan_path.exists() else None}
            for name, w in windows.items():
                result[name] = compare(engine.infer(w), reference[name])
        finally:
            engine.close()
        return result

    step("fp32", lambda: open_and_compare("fp32"))
    fp32 = figures["fp32"]
    if "failed" not in fp32:
        for name in windows:
            ok = max(fp32[name]["valence_max"], fp32[name]["arousal_max"]) <= FP32_TOLERANCE
            print(f"fp32 parity on {name}: {'within' if ok else 'OUTSIDE'} {FP32_TOLERANCE}", flush=True)
    step("fp32_again_from_cache", lambda: open_and_compare("fp32"))
    step("fp16", lambda: open_and_compare("fp16"))
    fp16 = figures["fp16"]
    if "failed" not in fp16:
        for name in windows:
            ok = max(fp16[name]["valence_p99"], fp16[name]["arousal_p99"]) <= FP16_TOLERANCE
            print(f"fp16 on {name}: p99 {'within' if ok else 'OUTSIDE'} {FP16_TOLERANCE}, quadrants agree "
                  f"{fp16[name]['quadrant_agreement']:.1%}", flush=True)

    def corrupt_then_reopen() -> dict:
        plan = Path(figures["fp32"]["plan"])
        plan.write_bytes(plan.read_bytes()[:1000])
        before = len(notes)
        result = open_and_compare("fp32")
        said = notes[before:]
        assert result["built"] and any("is corrupt" in n for n in said), f"notes: {said}"
        return {"notes": said, "rebuilt_in_s": result["open_s"]}
    if "failed" not in fp32:
        step("corrupt_plan", corrupt_then_reopen)
    print("notes: " + " | ".join(notes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
