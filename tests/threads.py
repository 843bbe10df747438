"""Real concurrency for race tests: threads with their own database connections start at once."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_in_threads(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run work(0) … work(count - 1) in `count` threads released together by a barrier; return
    each result, or the exception it raised, in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # returned, and asserted on by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
