"""`--record FILE.jsonl`: every message, one JSON object a line, written by
a thread of its own so that a slow disk never delays the analysis."""
from __future__ import annotations

import queue
import threading
from pathlib import Path

from ..publish.schema import Message, encode


class Recorder:
    def __init__(self, path: Path) -> None:
        self._file = open(path, "w", encoding="utf-8")     # OSError reaches the caller before anything starts
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._thread.start()
        self.written = 0

    def __call__(self, message: Message) -> None:
        self._queue.put(message.to_dict())       # now: the loop's thread owns the message

    def _write(self) -> None:
        while (message := self._queue.get()) is not None:
            self._file.write(encode(message).decode() + "\n")    # the JSON the publisher sends
            self.written += 1
            if self._queue.empty():
                self._file.flush()

    def close(self) -> None:
        """Write everything queued, then close: the file is complete."""
        self._queue.put(None)
        self._thread.join()
        self._file.close()
