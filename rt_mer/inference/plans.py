"""The cache of built TensorRT plans: keys, JSON sidecars, checks and
build-or-load. Plain Python that needs no GPU; where the cache lives is
`rt_mer.cache.cache_dir()` / plans."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from ..cache import cache_dir
from ..text import say
from .base import EngineError

OPT_BATCH = 32                 # the batch the profile is tuned for: `rt-mer analyze` sends 32 windows at a time
PLAN_FORMAT = 2                # bump when a plan's key or its sidecar changes meaning

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
class Portability:
    """Where a plan may run besides the TensorRT and GPU that built it.
    version_compatible: on any later TensorRT runtime that runs its
    builder's plans (runs_plans_of), the small lean and dispatch runtimes
    included; exclude_lean_runtime: without TensorRT's lean runtime inside
    the plan (a lean runtime must run it); ampere_plus: on every GPU of
    compute capability 8.0 or newer."""
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    ampere_plus: bool = False

    def tags(self) -> list[str]:
        return [tag for tag, on in (("vc", self.version_compatible), ("nolean", self.exclude_lean_runtime),
                                    ("ampereplus", self.ampere_plus)) if on]

    def describe(self) -> str:
        if not self.version_compatible:
            return "for this TensorRT only"
        return "version-compatible" + (", lean runtime excluded" if self.exclude_lean_runtime else
                                       ", lean runtime embedded")


AMPERE_PLUS = ("Ampere or newer", "8.0+")       # the key's gpu and compute capability of a hardware-compatible plan


@dataclass(frozen=True)
class PlanKey:
    """Everything a plan depends on: a cached plan is used only when all of
    it matches. `profile` is the batch sizes (min, opt, max)."""
    onnx_sha256: str
    builder: str                  # the TensorRT that built it, e.g. "tensorrt 10.16.1.11" or "tensorrt 8.6.0"
    gpu: str                      # or AMPERE_PLUS[0]
    compute_capability: str       # e.g. "9.0", or AMPERE_PLUS[1]
    precision: str                # "fp16" or "fp32"
    profile: tuple[int, int, int]
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    format: int = PLAN_FORMAT

    @property
    def portability(self) -> Portability:
        return Portability(self.version_compatible, self.exclude_lean_runtime,
                           (self.gpu, self.compute_capability) == AMPERE_PLUS)

    def fields(self) -> dict:
        return {**asdict(self), "profile": list(self.profile)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fields(), sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        where = ("any GPU of compute capability 8.0 or newer" if self.portability.ampere_plus else
                 f"{self.gpu} (compute capability {self.compute_capability})")
        return (f"{where}, built by {self.builder or 'a TensorRT builder'}, {self.precision}, batch "
                f"{self.profile[0]}-{self.profile[2]}, {self.portability.describe()}")


def plan_key(model: Path, builder: str, gpu: str, capability: tuple[int, int], precision: str, max_batch: int,
             portability: Portability = Portability()) -> PlanKey:
    if portability.ampere_plus and tuple(capability) < (8, 0):
        raise EngineError(f"a plan for every Ampere-or-newer GPU needs one to build it on, not {gpu} (compute "
                          f"capability {capability[0]}.{capability[1]})")
    gpu, capability_text = AMPERE_PLUS if portability.ampere_plus else (gpu, f"{capability[0]}.{capability[1]}")
    return PlanKey(file_sha256(model), builder, gpu, capability_text, precision,
                   (1, min(OPT_BATCH, max_batch), max_batch), portability.version_compatible,
                   portability.exclude_lean_runtime)


# The newest runtime major version that runs a version-compatible plan of
# each builder major version (TensorRT's documentation: 8 plans run on 9
# and 10, not 11; a major version's plans run on the next).
LAST_RUNTIME_MAJOR = {8: 10, 9: 10}


def version_numbers(text: str) -> tuple[int, ...]:
    """"tensorrt_lean 10.16.1.11" -> (10, 16, 1, 11); () when there is none."""
    numbers = []
    for part in text.rsplit(" ", 1)[-1].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def runs_plans_of(runtime: str, builder: str) -> bool:
    """Whether TensorRT `runtime` ("tensorrt_lean 10.16.1.11") runs a
    version-compatible plan built by `builder` ("tensorrt 8.6.0")."""
    ours, theirs = version_numbers(runtime), version_numbers(builder)
    if not ours or not theirs:
        return False
    return theirs <= ours and ours[0] <= LAST_RUNTIME_MAJOR.get(theirs[0], theirs[0] + 1)


def find_runnable_plan(key: PlanKey, folder: Path, runtime: str) -> PlanKey | None:
    """The key of a cached version-compatible plan that `runtime` runs and
    that matches `key` in all but its builder (the newest such builder),
    or None. For a runtime that cannot build."""
    found = []
    for sidecar in folder.glob("rt-mer-*.json"):
        try:
            fields = dict(json.loads(sidecar.read_text())["key"])
            fields["profile"] = tuple(fields["profile"])
            candidate = PlanKey(**fields)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if candidate.version_compatible and candidate == replace(key, builder=candidate.builder) and \
                runs_plans_of(runtime, candidate.builder):
            found.append(candidate)
    return max(found, key=lambda k: version_numbers(k.builder), default=None)


def plan_files(key: PlanKey, folder: Path) -> tuple[Path, Path]:
    """The plan and its JSON sidecar; the name shows the main fields, the
    digest covers all of them."""
    tags = "".join(f"-{tag}" for tag in key.portability.tags())
    stem = f"rt-mer-{key.precision}-b{key.profile[2]}{tags}-{key.digest()}"
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
        if found.get("onnx_sha256") == key.onnx_sha256 and (found.get("gpu"), found.get("builder")) != (
                key.gpu, key.builder):
            others.add(f"{found.get('gpu')} with {found.get('builder')}")
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
