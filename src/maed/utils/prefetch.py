"""Run an iterator ahead in a background thread, so that producing the next item (decoding a video frame,
which PyAV does without holding the GIL) overlaps with the consumer's work on the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """The items of ``items`` in order, produced by a daemon thread up to ``depth`` items ahead.

    An exception the producer raises is raised here, at the item where it happened. When the consumer
    stops early (``break``, an exception, the generator closed), the producer stops at its next item and
    the iterator is closed in that thread.
    """
    if depth < 1:
        raise ValueError(f"depth {depth}: expected 1 or more")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failure(e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
