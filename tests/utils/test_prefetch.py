"""The background-thread iterator the demo decodes frames with."""

from __future__ import annotations

import threading

import pytest

from maed.utils.prefetch import prefetched


def test_items_come_in_order_from_another_thread():
    threads = []

    def numbers():
        for i in range(50):
            threads.append(threading.current_thread())
            yield i

    assert list(prefetched(numbers(), depth=3)) == list(range(50))
    assert all(t is not threading.main_thread() for t in threads)


def test_the_producers_error_is_raised_where_it_happened():
    def failing():
        yield 1
        yield 2
        raise ValueError("frame 2 is damaged")

    seen = []
    with pytest.raises(ValueError, match="frame 2 is damaged"):
        for item in prefetched(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_stopping_early_stops_and_closes_the_producer():
    produced, closed = [], threading.Event()

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    items = prefetched(endless(), depth=2)
    for item in items:
        if item == 5:
            break
    items.close()
    assert closed.is_set()
    assert len(produced) <= 5 + 1 + 2 + 1  # at most the queue's depth (and one in hand) beyond what was taken
    with pytest.raises(ValueError, match="depth 0"):
        next(prefetched([1], depth=0))
