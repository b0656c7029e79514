"""Bounded producer/consumer stages: CPU work (decode, face tracking, encoding) overlapped with the model.

`prefetch(items, depth)` runs an iterator in a background thread at most `depth` items ahead;
`BackgroundSink(fn, depth)` feeds items to `fn` in a background thread. Both are bounded queues, so
memory stays a few chunks whatever the video's length; an exception on the worker thread re-raises on
the caller's, and closing either stops its thread.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class prefetch:  # noqa: N801 - used like a generator function
    """Iterate `items` on a worker thread, `depth` items ahead of the consumer."""

    def __init__(self, items: Iterable[Any], depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(iter(items),), name="latentsync-prefetch",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(_Failure(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and self._stop.is_set():
                close()
        self._put(_DONE)

    def __iter__(self) -> "prefetch":
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is _DONE:
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self._thread.join()
            raise item.exc
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class BackgroundSink:
    """Call `consume(item)` for every `put` item on a worker thread; `close()` drains and re-raises its errors."""

    def __init__(self, consume: Callable[[Any], None], depth: int = 8):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="latentsync-sink", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised on the producer's thread
                    self._error = exc

    def put(self, item: Any) -> None:
        if self._error is not None:
            self.close()
        self._queue.put(item)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
