"""`--record FILE.jsonl`: every message, one JSON object a line, written by
a thread of its own so that a slow disk never delays the analysis. A file
that cannot be written (a full disk) is not a traceback in that thread: the
recorder keeps the error, drops the rest and tells its owner, who stops."""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

from ..messages import Message
from ..publish.schema import encode


class Recorder:
    """A sink writing each message to `path`. `error` is the OSError that
    stopped the writing, if one did; `on_error` is then called once, from
    the writer's thread."""

    def __init__(self, path: Path, on_error: Callable[[], None] | None = None) -> None:
        self._file = open(path, "w", encoding="utf-8")     # OSError reaches the caller before anything starts
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: OSError | None = None
        self._on_error = on_error
        self.written = 0
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._thread.start()

    def __call__(self, message: Message) -> None:
        if self.error is None:
            self._queue.put(message.to_dict())       # now: the loop's thread owns the message

    def _write(self) -> None:
        try:
            while (message := self._queue.get()) is not None:
                self._file.write(encode(message).decode() + "\n")    # the JSON the publisher sends
                self.written += 1
                if self._queue.empty():
                    self._file.flush()
        except OSError as error:
            self.error = error
            if self._on_error:
                self._on_error()

    def close(self) -> None:
        """Write everything queued, then close: the file is complete unless
        `error` says why not."""
        self._queue.put(None)
        self._thread.join()
        try:
            self._file.close()
        except OSError as error:                # the last flush
            self.error = self.error or error
