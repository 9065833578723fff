"""TensorRT plans and their cache (rt_mer.inference.plans): keys, names,
portability, which runtime runs which builder's plans, corrupt or
mismatched plans, build-or-load. The builder and runtime are stood in for."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from rt_mer.inference import EngineError, default_model
from rt_mer.inference.plans import (AMPERE_PLUS, PlanKey, Portability, find_runnable_plan, load_or_build, plan_files,
                                    plan_key, read_cached_plan, runs_plans_of, version_numbers, write_plan)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copyfile(default_model(), path)
    return path


def a_key(model, **changes) -> PlanKey:
    fields = dict(builder="tensorrt 10.16.1.11", gpu="NVIDIA H100 80GB HBM3", capability=(9, 0), precision="fp16",
                  max_batch=1024)
    fields.update(changes)
    return plan_key(model, **fields)


def test_key_changes_with_each_thing_a_plan_depends_on(model, tmp_path):
    key = a_key(model)
    assert key == a_key(model) and plan_files(key, tmp_path) == plan_files(a_key(model), tmp_path)
    edited = tmp_path / "edited.onnx"
    edited.write_bytes(model.read_bytes() + b"\0")
    variants = [plan_key(edited, "tensorrt 10.16.1.11", "NVIDIA H100 80GB HBM3", (9, 0), "fp16", 1024),
                a_key(model, builder="tensorrt 10.15.1.29"), a_key(model, builder="tensorrt_rtx 10.16.1.11"),
                a_key(model, gpu="NVIDIA A100-SXM4-80GB"), a_key(model, capability=(8, 0)),
                a_key(model, precision="fp32"), a_key(model, max_batch=256),
                a_key(model, portability=Portability(version_compatible=True)),
                a_key(model, portability=Portability(version_compatible=True, exclude_lean_runtime=True)),
                a_key(model, portability=Portability(ampere_plus=True))]
    names = {plan_files(k, tmp_path)[0].name for k in [key, *variants]}
    assert len(names) == 1 + len(variants)
    assert key.profile == (1, 32, 1024) and a_key(model, max_batch=8).profile == (1, 8, 8)


def test_cached_plan_is_checked_before_use(model, tmp_path):
    key = a_key(model)
    plan, reason = read_cached_plan(key, tmp_path)
    assert plan is None and reason.startswith("no cached plan for NVIDIA H100 80GB HBM3 (compute capability 9.0)")

    plan_file = write_plan(key, b"a serialised plan", tmp_path, 12.5)
    sidecar = plan_files(key, tmp_path)[1]
    assert read_cached_plan(key, tmp_path) == (b"a serialised plan", "")
    meta = json.loads(sidecar.read_text())
    assert meta["key"]["gpu"] == "NVIDIA H100 80GB HBM3" and meta["key"]["precision"] == "fp16"
    assert meta["plan_bytes"] == len(b"a serialised plan") and meta["build_seconds"] == 12.5

    plan_file.write_bytes(b"a serialised plaN")                                   # damaged on disk
    assert read_cached_plan(key, tmp_path) == (None, f"cached plan {plan_file} is corrupt "
                                                     "(its checksum does not match its metadata)")

    write_plan(key, b"a serialised plan", tmp_path)
    meta["key"]["builder"] = "tensorrt 10.3.0"                                   # metadata of another build
    sidecar.write_text(json.dumps(meta))
    plan, reason = read_cached_plan(key, tmp_path)
    assert plan is None
    assert "built for another setup: builder 'tensorrt 10.3.0' (this one: 'tensorrt 10.16.1.11')" in reason

    sidecar.write_text("{not json")
    assert "is unreadable" in read_cached_plan(key, tmp_path)[1]
    sidecar.unlink()
    assert "has no metadata beside it" in read_cached_plan(key, tmp_path)[1]


def test_plans_for_another_gpu_are_named_when_none_fits(model, tmp_path):
    write_plan(a_key(model, gpu="NVIDIA A100-SXM4-80GB", builder="tensorrt 10.3.0"), b"plan", tmp_path)
    plan, reason = read_cached_plan(a_key(model), tmp_path)
    assert plan is None
    assert reason.endswith("(the cache has plans of this model for NVIDIA A100-SXM4-80GB with tensorrt 10.3.0 only)")


class FakeTensorRT:
    """Stands in for TensorRT's builder and runtime, which need a GPU: a
    build makes numbered plans, and a plan loads unless it is one TensorRT
    would refuse (another version's, say)."""

    def __init__(self):
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return f"plan {self.builds}".encode()

    @staticmethod
    def deserialize(plan: bytes):
        if not plan.startswith(b"plan"):
            raise EngineError("Serialization assertion failed: version tag does not match")
        return SimpleNamespace(plan=plan)


def test_build_once_then_load_from_the_cache(model, tmp_path):
    key, trt, notes = a_key(model), FakeTensorRT(), []
    engine, path, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 1" and path == plan_files(key, tmp_path)[0] and path.exists()
    assert len(notes) == 1 and notes[0].startswith("no cached plan for ") and "building one" in notes[0]
    engine, path, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert not built and engine.plan == b"plan 1" and trt.builds == 1 and len(notes) == 1
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, force=True, report=notes.append)
    assert built and engine.plan == b"plan 2" and "(--force)" in notes[-1]


def test_corrupt_or_unloadable_plans_are_reported_and_rebuilt(model, tmp_path):
    key, trt, notes = a_key(model), FakeTensorRT(), []
    plan_file = write_plan(key, b"plan 0", tmp_path)
    plan_file.write_bytes(b"plan 0, half wri")
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 1" and "is corrupt" in notes[-1] and "building one" in notes[-1]
    assert read_cached_plan(key, tmp_path)[0] == b"plan 1"                       # the rebuild replaced it

    write_plan(key, b"a plan of another TensorRT", tmp_path)                      # sound file, refused on load
    engine, _, built = load_or_build(key, tmp_path, trt.build, trt.deserialize, report=notes.append)
    assert built and engine.plan == b"plan 2"
    assert f"cached plan {plan_file} does not load (Serialization assertion failed: version tag does not match)" \
        in notes[-1]
    assert len(notes) == 2 and all("\n" not in n for n in notes)


def test_a_new_plan_that_does_not_load_is_not_cached(model, tmp_path):
    key, notes = a_key(model), []
    with pytest.raises(EngineError, match="version tag does not match"):
        load_or_build(key, tmp_path, lambda: b"a plan this runtime refuses", FakeTensorRT.deserialize,
                      report=notes.append)
    assert not plan_files(key, tmp_path)[0].exists()


def test_an_unwritable_cache_still_gives_an_engine(model, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    trt, notes = FakeTensorRT(), []
    engine, _, built = load_or_build(a_key(model), blocked / "plans", trt.build, trt.deserialize,
                                     report=notes.append)
    assert built and engine.plan == b"plan 1" and "cannot cache the plan" in notes[-1]


def test_which_runtime_runs_which_builders_plans():
    assert version_numbers("tensorrt_lean 10.16.1.11") == (10, 16, 1, 11)
    assert version_numbers("tensorrt (version unknown)") == ()
    assert runs_plans_of("tensorrt_lean 10.16.1.11", "tensorrt 8.6.0")
    assert runs_plans_of("tensorrt_dispatch 10.16.1.11", "tensorrt 10.16.1.11")
    assert runs_plans_of("tensorrt 8.6.1", "tensorrt 8.6.0")
    assert not runs_plans_of("tensorrt 8.6.0", "tensorrt 8.6.1")              # older runtime
    assert not runs_plans_of("tensorrt_lean 11.4.0.106", "tensorrt 8.6.0")    # TensorRT 11 runs no 8 plans
    assert runs_plans_of("tensorrt_lean 11.4.0.106", "tensorrt 10.16.1.11")
    assert not runs_plans_of("tensorrt_lean 10.16.1.11", "tensorrt (version unknown)")


def test_plan_names_say_their_portability(model, tmp_path):
    def name(**portability):
        key = plan_key(model, "tensorrt 8.6.0", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024,
                       Portability(**portability))
        return plan_files(key, tmp_path)[0].name
    assert name().startswith("rt-mer-fp32-b1024-") and "-vc" not in name()
    assert name(version_compatible=True).startswith("rt-mer-fp32-b1024-vc-")
    assert name(version_compatible=True, exclude_lean_runtime=True).startswith("rt-mer-fp32-b1024-vc-nolean-")
    assert name(version_compatible=True, ampere_plus=True).startswith("rt-mer-fp32-b1024-vc-ampereplus-")
    assert all(c.isalnum() or c in "._-" for c in name(version_compatible=True, ampere_plus=True))  # $OUT-safe


def test_an_ampere_plus_key_names_no_gpu(model):
    on_h100 = plan_key(model, "tensorrt 8.6.0", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024,
                       Portability(True, True, True))
    on_a10 = plan_key(model, "tensorrt 8.6.0", "NVIDIA A10", (8, 6), "fp32", 1024, Portability(True, True, True))
    assert on_h100 == on_a10 and (on_h100.gpu, on_h100.compute_capability) == AMPERE_PLUS
    assert "any GPU of compute capability 8.0 or newer" in on_h100.describe()
    assert "version-compatible, lean runtime excluded" in on_h100.describe()
    with pytest.raises(EngineError, match="needs one to build it on"):
        plan_key(model, "tensorrt 8.6.0", "Tesla T4", (7, 5), "fp32", 1024, Portability(True, True, True))


def test_a_runtime_finds_the_newest_plan_it_runs(model, tmp_path):
    vc = Portability(version_compatible=True, exclude_lean_runtime=True)
    wanted = plan_key(model, "", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024, vc)
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.16.1.11") is None
    for builder in ("tensorrt 8.6.0", "tensorrt 10.16.1.11", "tensorrt 10.17.0.1"):      # the last: too new
        write_plan(plan_key(model, builder, "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024, vc), b"plan", tmp_path)
    write_plan(plan_key(model, "tensorrt 10.16.0.72", "NVIDIA H100 80GB HBM3", (9, 0), "fp32", 1024), b"p", tmp_path)
    write_plan(plan_key(model, "tensorrt 10.16.0.72", "NVIDIA H100 80GB HBM3", (9, 0), "fp16", 1024, vc), b"p",
               tmp_path)
    found = find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.16.1.11")
    assert found is not None and found.builder == "tensorrt 10.16.1.11"
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 10.0.1").builder == "tensorrt 8.6.0"
    assert find_runnable_plan(wanted, tmp_path, "tensorrt_lean 8.6.0").builder == "tensorrt 8.6.0"
