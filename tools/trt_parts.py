#!/usr/bin/env python3
"""A large folder carried to the GPU machine in parts, one part per call of
the device tool (each call carries at most 64 MiB, the working tree included).

    pack STAGE NAME OUT [--part-mib 60]   here: STAGE/NAME -> tar | zstd -15 --long=30 -> OUT/NAME.tar.zst.01 ...
                                          and OUT/manifest.json (sha256 and size of every part and of the whole)
    resplit OUT --part-mib N              here: the same bytes in parts of another size (no recompression)
    budget OUT [EXTRA...]                 here, in the checkout that calls the device tool: whether its working
                                          tree, the largest part and EXTRA (.whl, OUT/zstd) fit one call
    receive OUT PARTS                     there, each call: move the parts carried in OUT into PARTS, checking
                                          each against the manifest; says which are still missing
    join OUT PARTS DEST                   there, last call: every part checked, joined, unpacked into DEST/NAME;
                                          names exactly the parts missing or corrupt (send those again)

Only the standard library, tar and zstd (from PATH, else the `zstd` binary
carried in OUT beside the manifest). Exit status: 0 done, 1 parts missing
or corrupt, 2 bad use.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

MANIFEST = "manifest.json"
MIB = 1 << 20
MAX_PART_MIB = 60
CALL_MIB = 64                              # what one device-tool call carries, the working tree included
ZSTD_LEVEL, ZSTD_WINDOW_LOG = 15, 30      # --long=30: a 1 GiB window finds repeats across the big libraries


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def zstd(out: Path) -> str:
    """The zstd command: PATH's, else the one carried beside the manifest."""
    found = shutil.which("zstd")
    if found:
        return found
    carried = out / "zstd"
    if carried.is_file():
        carried.chmod(0o755)
        return str(carried)
    raise SystemExit("trt_parts: no zstd on PATH and none carried beside the manifest (send OUT/zstd too)")


def part_sizes(total: int, max_part: int) -> list[int]:
    """As few parts as fit `max_part` bytes, their sizes differing by one byte at most."""
    count = max(1, math.ceil(total / max_part))
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


def pack(stage: Path, name: str, out: Path, part_bytes: int, level: int = ZSTD_LEVEL, threads: int = 2) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{name}.tar.zst*"):
        old.unlink()
    whole = out / f"{name}.tar.zst"
    partial = whole.with_suffix(".zst.partial")
    with open(partial, "wb") as sink:
        tar = subprocess.Popen(["tar", "-C", str(stage), "-cf", "-", name], stdout=subprocess.PIPE)
        squeeze = subprocess.run([zstd(out), f"-{level}", f"--long={ZSTD_WINDOW_LOG}", f"-T{threads}", "-q", "-c"],
                                 stdin=tar.stdout, stdout=sink)
        tar.stdout.close()
        if tar.wait() or squeeze.returncode:
            partial.unlink()
            raise SystemExit(f"trt_parts: tar or zstd failed on {stage / name}")
    partial.rename(whole)
    return split(whole, name, out, part_bytes)


def split(whole: Path, name: str, out: Path, part_bytes: int) -> dict:
    """`whole` (removed after) -> parts in `out` and their manifest."""
    total = whole.stat().st_size
    parts = []
    with open(whole, "rb") as source:
        for number, size in enumerate(part_sizes(total, part_bytes), 1):
            path = out / f"{name}.tar.zst.{number:02d}"
            path.write_bytes(source.read(size))
            parts.append({"name": path.name, "bytes": size, "sha256": sha256(path)})
    manifest = {"name": name, "whole": {"name": whole.name, "bytes": total, "sha256": sha256(whole)},
                "zstd_window_log": ZSTD_WINDOW_LOG, "parts": parts}
    whole.unlink()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def resplit(out: Path, part_bytes: int) -> dict:
    """The same bytes in parts of another size (to fit a larger working
    tree beside them in one call): no recompression."""
    manifest = read_manifest(out)
    missing, corrupt = check(out, manifest)
    if missing or corrupt:
        raise SystemExit(f"trt_parts: cannot resplit: {' '.join(missing + corrupt)} missing or corrupt")
    whole = out / manifest["whole"]["name"]
    with open(whole, "wb") as sink:
        for part in manifest["parts"]:
            sink.write((out / part["name"]).read_bytes())
            (out / part["name"]).unlink()
    if sha256(whole) != manifest["whole"]["sha256"]:
        raise SystemExit("trt_parts: the joined parts do not match the manifest's whole")
    return split(whole, manifest["name"], out, part_bytes)


def budget(out: Path, extra: list[Path]) -> int:
    """Whether one call carries the working tree, the manifest, the largest
    part and `extra` (zstd, .whl) within the device tool's 64 MiB."""
    absent = [str(p) for p in extra if not p.exists()]
    if absent:
        print(f"not here: {' '.join(absent)}", file=sys.stderr)
        return 1
    listed = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], capture_output=True,
                            check=True).stdout.split(b"\0")
    tree = sum(os.path.getsize(name) for name in listed if name and os.path.isfile(name))
    manifest = read_manifest(out)
    largest = max(part["bytes"] for part in manifest["parts"])
    carried = sum(sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
                  for p in extra)
    total = tree + (out / MANIFEST).stat().st_size + largest + carried
    print(f"working tree {tree / MIB:.1f} MiB + largest part {largest / MIB:.1f} MiB + manifest and "
          f"{', '.join(map(str, extra)) or 'nothing else'} {carried / MIB:.1f} MiB = {total / MIB:.1f} MiB of "
          f"{CALL_MIB} MiB a call")
    if total > CALL_MIB * MIB:
        print(f"too big: resplit with --part-mib {(CALL_MIB * MIB - total + largest) / MIB - 0.5:.1f} or less",
              file=sys.stderr)
        return 1
    return 0


def read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"trt_parts: no readable {out / MANIFEST} ({error}): carry it with every part")


def check(parts: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """(missing, corrupt) part names in `parts`."""
    missing, corrupt = [], []
    for part in manifest["parts"]:
        path = parts / part["name"]
        if not path.is_file():
            missing.append(part["name"])
        elif path.stat().st_size != part["bytes"] or sha256(path) != part["sha256"]:
            corrupt.append(part["name"])
    return missing, corrupt


def receive(out: Path, parts: Path) -> int:
    """Move the parts carried in `out` into `parts`, each checked; a corrupt
    one is dropped and named. Status 0 whatever is still missing."""
    manifest = read_manifest(out)
    parts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / MANIFEST, parts / MANIFEST)
    bad = False
    for part in manifest["parts"]:
        carried = out / part["name"]
        if not carried.is_file():
            continue
        if carried.stat().st_size == part["bytes"] and sha256(carried) == part["sha256"]:
            shutil.move(carried, parts / part["name"])
            print(f"received {part['name']}: checksum ok")
        else:
            bad = True
            print(f"CORRUPT {part['name']} (size or checksum differs): send it again")
    missing, corrupt = check(parts, manifest)
    have = len(manifest["parts"]) - len(missing) - len(corrupt)
    print(f"{have} of {len(manifest['parts'])} parts here"
          + (f"; still to send: {' '.join(missing + corrupt)}" if missing or corrupt else "; all here"))
    return 1 if bad else 0


def join(out: Path, parts: Path, dest: Path) -> int:
    manifest = read_manifest(out) if (out / MANIFEST).is_file() else read_manifest(parts)
    missing, corrupt = check(parts, manifest)
    if missing or corrupt:
        for name in missing:
            print(f"MISSING {name}: send it again", file=sys.stderr)
        for name in corrupt:
            print(f"CORRUPT {name}: send it again", file=sys.stderr)
        return 1
    target = dest / manifest["name"]
    if (target / ".complete").is_file() and (target / ".complete").read_text().strip() == manifest["whole"]["sha256"]:
        print(f"{target}: already unpacked from these parts")
        return 0
    shutil.rmtree(target, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    unzstd = subprocess.Popen([zstd(out), "-d", "-q", "-c", f"--long={manifest['zstd_window_log']}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    untar = subprocess.Popen(["tar", "-C", str(dest), "-xf", "-"], stdin=unzstd.stdout)
    unzstd.stdout.close()
    try:
        for part in manifest["parts"]:
            with open(parts / part["name"], "rb") as f:
                for chunk in iter(lambda: f.read(MIB), b""):
                    digest.update(chunk)
                    unzstd.stdin.write(chunk)
    finally:
        unzstd.stdin.close()
    if unzstd.wait() or untar.wait() or digest.hexdigest() != manifest["whole"]["sha256"]:
        shutil.rmtree(target, ignore_errors=True)
        print(f"the joined parts do not unpack (zstd {unzstd.returncode}, tar {untar.returncode}, whole checksum "
              f"{'ok' if digest.hexdigest() == manifest['whole']['sha256'] else 'differs'})", file=sys.stderr)
        return 1
    (target / ".complete").write_text(manifest["whole"]["sha256"] + "\n")
    print(f"{target}: unpacked from {len(manifest['parts'])} parts ({manifest['whole']['bytes'] >> 20} MiB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack")
    p.add_argument("stage", type=Path)
    p.add_argument("name")
    p.add_argument("out", type=Path)
    p.add_argument("--part-mib", type=float, default=MAX_PART_MIB)
    p.add_argument("--level", type=int, default=ZSTD_LEVEL)
    r = commands.add_parser("receive")
    r.add_argument("out", type=Path)
    r.add_argument("parts", type=Path)
    s = commands.add_parser("resplit")
    s.add_argument("out", type=Path)
    s.add_argument("--part-mib", type=float, default=MAX_PART_MIB)
    b = commands.add_parser("budget")
    b.add_argument("out", type=Path)
    b.add_argument("extra", type=Path, nargs="*")
    j = commands.add_parser("join")
    j.add_argument("out", type=Path)
    j.add_argument("parts", type=Path)
    j.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.command in ("pack", "resplit") and not 0 < args.part_mib <= MAX_PART_MIB:
        parser.error(f"--part-mib must be in (0, {MAX_PART_MIB}]")
    if args.command == "budget":
        return budget(args.out, args.extra)
    if args.command in ("pack", "resplit"):
        manifest = (pack(args.stage, args.name, args.out, int(args.part_mib * MIB), args.level,
                         threads=min(2, os.cpu_count() or 1)) if args.command == "pack" else
                    resplit(args.out, int(args.part_mib * MIB)))
        sizes = ", ".join(f"{p['bytes'] / MIB:.1f}" for p in manifest["parts"])
        print(f"{manifest['whole']['bytes'] / MIB:.0f} MiB in {len(manifest['parts'])} parts ({sizes} MiB) "
              f"in {args.out}")
        return 0
    if args.command == "receive":
        return receive(args.out, args.parts)
    return join(args.out, args.parts, args.dest)


if __name__ == "__main__":
    sys.exit(main())
