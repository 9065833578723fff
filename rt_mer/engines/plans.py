"""The cache of built TensorRT plans: keys, JSON sidecars, checks and
build-or-load. Plain Python that needs no GPU; where the cache lives is
`rt_mer.cache.cache_dir()` / plans."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..cache import cache_dir
from ..text import say
from .base import EngineError

OPT_BATCH = 32                 # the batch the profile is tuned for: `rt-mer analyze` sends 32 windows at a time
PLAN_FORMAT = 1                # bump when a plan's key or its sidecar changes meaning

Report = Callable[[str], None]


def note(message: str) -> None:
    say(f"tensorrt: {message}")


def one_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def plans_dir() -> Path:
    return cache_dir() / "plans"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PlanKey:
    """Everything a plan depends on: a cached plan is used only when all of
    it matches. `profile` is the batch sizes (min, opt, max)."""
    onnx_sha256: str
    runtime: str                  # e.g. "tensorrt 10.16.1.11" or "tensorrt_rtx 1.2.0.54"
    gpu: str
    compute_capability: str       # e.g. "9.0"
    precision: str                # "fp16" or "fp32"
    profile: tuple[int, int, int]
    format: int = PLAN_FORMAT

    def fields(self) -> dict:
        return {**asdict(self), "profile": list(self.profile)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fields(), sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        return (f"{self.gpu} (compute capability {self.compute_capability}), {self.runtime}, {self.precision}, "
                f"batch {self.profile[0]}-{self.profile[2]}")


def plan_key(model: Path, runtime: str, gpu: str, capability: tuple[int, int], precision: str,
             max_batch: int) -> PlanKey:
    return PlanKey(file_sha256(model), runtime, gpu, f"{capability[0]}.{capability[1]}", precision,
                   (1, min(OPT_BATCH, max_batch), max_batch))


def plan_files(key: PlanKey, folder: Path) -> tuple[Path, Path]:
    """The plan and its JSON sidecar; the name shows the main fields, the
    digest covers all of them."""
    stem = f"rt-mer-{key.precision}-b{key.profile[2]}-{key.digest()}"
    return folder / f"{stem}.plan", folder / f"{stem}.json"


def _differences(found: dict, key: PlanKey) -> str:
    wanted = key.fields()
    return ", ".join(f"{name} {found.get(name)!r} (this one: {value!r})"
                     for name, value in wanted.items() if found.get(name) != value)


def _other_plans(key: PlanKey, folder: Path) -> str:
    """Plans of the same model built for another GPU or TensorRT, if any:
    worth saying why none of them serves."""
    others = set()
    for sidecar in folder.glob("rt-mer-*.json"):
        try:
            found = json.loads(sidecar.read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if found.get("onnx_sha256") == key.onnx_sha256 and (found.get("gpu"), found.get("runtime")) != (
                key.gpu, key.runtime):
            others.add(f"{found.get('gpu')} with {found.get('runtime')}")
    return f" (the cache has plans of this model for {'; '.join(sorted(others))} only)" if others else ""


def read_cached_plan(key: PlanKey, folder: Path) -> tuple[bytes | None, str]:
    """(plan bytes, "") when a sound plan for `key` is cached, else (None,
    why not): none, no or unreadable metadata, metadata for another key,
    or bytes that do not match the checksum in the metadata."""
    plan_file, sidecar = plan_files(key, folder)
    if not plan_file.exists():
        return None, f"no cached plan for {key.describe()}{_other_plans(key, folder)}"
    try:
        meta = json.loads(sidecar.read_text())
    except FileNotFoundError:
        return None, f"cached plan {plan_file} has no metadata beside it"
    except (OSError, ValueError) as error:
        return None, f"cached plan metadata {sidecar} is unreadable ({one_line(error)})"
    found = meta.get("key") if isinstance(meta, dict) else None
    if not isinstance(found, dict):
        return None, f"cached plan metadata {sidecar} has no key"
    if found != key.fields():
        return None, f"cached plan {plan_file} was built for another setup: {_differences(found, key)}"
    try:
        plan = plan_file.read_bytes()
    except OSError as error:
        return None, f"cached plan {plan_file} is unreadable ({error.strerror})"
    if hashlib.sha256(plan).hexdigest() != meta.get("plan_sha256"):
        return None, f"cached plan {plan_file} is corrupt (its checksum does not match its metadata)"
    return plan, ""


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers (another rt-mer at the same moment) see the old file or the new one, never half."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_plan(key: PlanKey, plan: bytes, folder: Path, build_seconds: float = 0.0) -> Path:
    """Cache a plan, then its sidecar: a plan without a sidecar is not trusted."""
    folder.mkdir(parents=True, exist_ok=True)
    plan_file, sidecar = plan_files(key, folder)
    _write_atomically(plan_file, plan)
    meta = {"key": key.fields(), "plan_sha256": hashlib.sha256(plan).hexdigest(), "plan_bytes": len(plan),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": round(build_seconds, 1)}
    _write_atomically(sidecar, (json.dumps(meta, indent=1) + "\n").encode())
    return plan_file


def load_or_build(key: PlanKey, folder: Path, build: Callable[[], bytes], deserialize: Callable[[bytes], object],
                  force: bool = False, report: Report = note) -> tuple[object, Path, bool]:
    """(engine, plan file, built): the cached plan when it is sound and
    deserialises, else a new one, built, cached and deserialised. What is
    wrong with a cached plan is reported in one line before the rebuild.
    `deserialize` raises EngineError for a plan it cannot load."""
    plan_file = plan_files(key, folder)[0]
    if force:
        report(f"rebuilding the plan for {key.describe()} (--force)")
    else:
        plan, reason = read_cached_plan(key, folder)
        if plan is not None:
            try:
                return deserialize(plan), plan_file, False
            except EngineError as error:
                reason = f"cached plan {plan_file} does not load ({error})"
        report(f"{reason}; building one (a minute or so, once)")
    started = time.perf_counter()
    plan = build()
    engine = deserialize(plan)          # first: a plan this runtime cannot load is not cached
    try:
        write_plan(key, plan, folder, time.perf_counter() - started)
    except OSError as error:
        report(f"cannot cache the plan in {folder} ({error.strerror}); it will be built again next time")
    return engine, plan_file, True
