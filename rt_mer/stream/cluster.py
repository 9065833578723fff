"""`rt-mer analyze --cluster`: the same analysis on a Ray cluster.

Workers are Ray actors, each opening one engine once (ONNX Runtime with
--threads on the CPUs Ray gives it, or TensorRT on the GPU Ray gives it)
and analysing the files it is sent, a few per task: the actor pattern of
Ray's batch-inference guides. The driver keeps every worker DEPTH tasks
deep so none waits for the next, and hands the results back in input
order, so the rows are a local run's rows. What it holds is bounded: no
file is sent more than LOOKAHEAD files ahead of the first one not yet
handed back.

Worker loss: actors are created with max_restarts, so Ray starts a worker
that died again (a new process, which opens its engine again), and with
max_task_retries=0, so the tasks it held fail here with RayActorError. Their
files go back to the front of the queue, one file per task, and are sent to
the next worker that is up (a dead worker rejoins once it answers again).
A file whose worker died MAX_DEATHS times while analysing it is reported
as failed, so a file that crashes its decoder cannot loop for ever. A file
is handed back once: the first result for it.
"""
from __future__ import annotations

import os
import socket
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import ray
from ray.exceptions import RayActorError

from ..inference import EngineError, open_engine
from .table import FileResult, analyze_to_result

BATCH_FILES = 4         # files per task, at most
DEPTH = 2               # tasks queued on each worker
MAX_DEATHS = 3          # worker deaths one file may cause before it counts as failed
MAX_RESTARTS = 8        # per worker, by Ray
LOOKAHEAD = 256         # files sent ahead of the first one not yet handed back
PROBE_SECONDS = 10.0


class ClusterError(Exception):
    """The cluster cannot run the analysis; one line for the user."""


def parse_address(text: str) -> tuple[str | None, int | None]:
    """--cluster: "local[:N]" -> (None, N or None): start Ray here with N
    workers (default: one per core); anything else is ray.init's address."""
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if count and not (count.isdigit() and int(count) > 0):
            raise ClusterError(f"--cluster {text}: expected local or local:N with N a whole number above 0")
        return None, int(count) if count else None
    return text, None


def _probe(address: str) -> None:
    """A HOST:PORT that answers nothing fails in seconds, not after Ray's
    minutes of retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return          # auto, or a form Ray knows and we do not: Ray says
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as error:
        raise ConnectionError(f"nothing answers at {host}:{port} ({error.strerror or error})") from None


class Worker:
    """One Ray actor: one engine, opened once, for every file it is sent."""

    def __init__(self, engine: str, model: str | None, threads: int | None, precision: str, max_batch: int,
                 hop: float, moods) -> None:
        self.hop, self.moods, self.engine, self.error = hop, moods, None, None
        try:
            self.engine = open_engine(engine, model, threads, precision, max_batch)
        except EngineError as error:        # said by ready(), so the driver can say it in one line
            self.error = str(error)

    def ready(self) -> dict:
        engine = f"{self.engine.name} ({self.engine.reason})" if self.engine else None
        return {"pid": os.getpid(), "host": socket.gethostname(), "engine": engine, "error": self.error}

    def analyze(self, paths: list[str]) -> list[FileResult]:
        results = [analyze_to_result(Path(path), self.engine, self.hop, self.moods) for path in paths]
        for result in results:
            if result.error:        # which machine could not read it, where paths differ between them
                result.error += f" (on worker {socket.gethostname()})"
        return results


class Cluster:
    """Workers on a Ray cluster and the run of a list of files through them."""

    def __init__(self, address: str, workers: int | None, engine: str = "auto", model: Path | None = None,
                 threads: int | None = None, precision: str = "auto", max_batch: int = 1024,
                 hop: float = 0.5, moods=None) -> None:
        where, local_workers = parse_address(address)
        threads = threads or 1
        self.started_here = where is None
        try:
            if self.started_here:
                count = workers or local_workers or os.cpu_count() or 1
                ray.init(num_cpus=count * threads, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
            else:
                _probe(where)
                ray.init(address=where, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterError(f"cannot reach the Ray cluster at {address}: {str(error).splitlines()[0]}") \
                from None
        try:
            resources = ray.cluster_resources()
            gpus = 1 if engine == "tensorrt" or (engine == "auto" and resources.get("GPU", 0) >= 1) else 0
            count = workers or local_workers or int(resources.get("GPU", 0) if gpus
                                                    else resources.get("CPU", 1) // threads) or 1
            actor = ray.remote(Worker).options(num_cpus=1 if gpus else threads, num_gpus=gpus,
                                               max_restarts=MAX_RESTARTS, max_task_retries=0)
            self.workers = [actor.remote(engine, str(model) if model else None, threads, precision, max_batch,
                                         hop, moods) for _ in range(count)]
            self.info = dict(zip(self.workers, ray.get([w.ready.remote() for w in self.workers])))
        except BaseException:
            self.close()
            raise
        errors = {info["error"] for info in self.info.values() if info["error"]}
        if errors:
            self.close()
            raise ClusterError(f"worker could not open its engine: {sorted(errors)[0]}")
        self.up = set(self.workers)
        self.deaths = 0         # worker deaths seen (tasks lost and sent again)

    def describe(self) -> str:
        hosts = sorted({info["host"] for info in self.info.values()})
        engines = sorted({info["engine"] for info in self.info.values()})
        return f"{len(self.workers)} workers on {', '.join(hosts)}; engine {', '.join(engines)}"

    def results(self, files: list[Path], on_result: Callable[[FileResult], None] | None = None) \
            -> Iterator[FileResult]:
        """Each file's FileResult, in the order of `files`; `on_result` is
        called as each arrives (in any order), for progress."""
        todo = deque((index, 0) for index in range(len(files)))    # (index, worker deaths it has seen)
        running: dict = {}          # task -> (worker, [(index, deaths)]), or (worker, None) for a ping
        self.load = {worker: 0 for worker in self.workers}
        arrived: dict[int, FileResult] = {}
        handed = 0
        while handed < len(files):
            self._feed(files, todo, running, handed)
            if not running:
                raise ClusterError("every worker has died (with --resume, a new run goes on from here)")
            (task,), _ = ray.wait(list(running), num_returns=1)
            worker, batch = running.pop(task)
            try:
                answer = ray.get(task)
            except RayActorError:
                self._lost(worker, batch, todo, running, arrived, files)
                continue
            if batch is None:           # a ping answered: the worker is back, unless its engine failed
                self.info[worker] = answer
                if not answer["error"]:
                    self.up.add(worker)
                continue
            self.load[worker] -= 1
            for (index, _), result in zip(batch, answer):
                if index not in arrived and index >= handed:
                    arrived[index] = result
                    if on_result:
                        on_result(result)
            while handed in arrived:
                yield arrived.pop(handed)
                handed += 1

    def _feed(self, files, todo, running, handed) -> None:
        for worker in self.workers:
            while worker in self.up and self.load[worker] < DEPTH and todo and todo[0][0] < handed + LOOKAHEAD:
                size = max(1, min(BATCH_FILES, len(todo) // (len(self.up) * DEPTH)))
                batch = [todo.popleft()]
                while len(batch) < size and todo and todo[0][1] == 0 == batch[0][1] \
                        and todo[0][0] < handed + LOOKAHEAD:
                    batch.append(todo.popleft())
                running[worker.analyze.remote([str(files[index]) for index, _ in batch])] = (worker, batch)
                self.load[worker] += 1

    def _lost(self, worker, batch, todo, running, arrived, files) -> None:
        """A worker died: its files go back, one per task; it rejoins when a ping answers."""
        if batch is not None:
            self.load[worker] -= 1
            self.deaths += 1
            for index, deaths in reversed(batch):
                if deaths + 1 >= MAX_DEATHS:
                    arrived.setdefault(index, FileResult(str(files[index]), error=f"{files[index]}: its worker "
                                                         f"died {deaths + 1} times while analysing it"))
                else:
                    todo.appendleft((index, deaths + 1))
        if worker in self.up:       # a failed ping (out of restarts) leaves it out for good
            self.up.discard(worker)
            running[worker.ready.remote()] = (worker, None)

    def busy_pids(self) -> list[int]:
        """The processes of the workers holding tasks now (for tests)."""
        return [self.info[worker]["pid"] for worker in self.workers if self.load.get(worker)]

    def close(self) -> None:
        for worker in getattr(self, "workers", []):
            ray.kill(worker)
        ray.shutdown()
